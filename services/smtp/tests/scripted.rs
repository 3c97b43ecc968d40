//! The driver against scripted servers on the loopback (kernel sockets): the bytes it
//! writes, time-outs, and a server that talks after its STARTTLS answer.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use sixstack_smtp::*;
use sixstack_transport::KernelTransport;
use zeroize::Zeroizing;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn request(port: u16, mode: TlsMode) -> MailRequest {
    MailRequest {
        host: "127.0.0.1".into(),
        port,
        tls: TlsOptions {
            mode,
            server_name: "127.0.0.1".into(),
            ca: None,
            cert: None,
            key: None,
        },
        auth: AuthChoice::Auto,
        credentials: Some(Credentials {
            user: "anna".into(),
            password: Zeroizing::new("pw-123".into()),
        }),
        ehlo: EhloName::Name("client.test".into()),
        timeouts: Timeouts::default().capped(Duration::from_secs(2)),
        max_message: 1 << 20,
        message: Message {
            from: Mailbox::parse("anna@example.org").unwrap(),
            to: vec![Mailbox::parse("bob@example.org").unwrap()],
            cc: vec![],
            bcc: vec![Mailbox::parse("zed@example.org").unwrap()],
            subject: "scripted".into(),
            body: b".dot first\nsecond\n".to_vec(),
            attachments: vec![],
        },
    }
}

/// A server that answers each line it reads from `script` (the first entry is the
/// greeting) and returns everything it received.
fn server(script: Vec<&'static str>) -> (u16, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut got = String::new();
        let mut in_data = false;
        for (i, answer) in script.into_iter().enumerate() {
            // The greeting comes unasked; every other answer follows a command (or, after
            // 354, the whole message up to its final dot).
            if i > 0 {
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return got;
                    }
                    got.push_str(&line);
                    if !in_data || line == ".\r\n" {
                        break;
                    }
                }
                in_data = false;
            }
            if answer.starts_with("354") {
                in_data = true;
            }
            if w.write_all(answer.as_bytes()).is_err() {
                break;
            }
        }
        let mut rest = String::new();
        let _ = r.read_to_string(&mut rest);
        got + &rest
    });
    (port, h)
}

#[test]
fn plain_dialogue_on_the_wire() {
    let (port, h) = server(vec![
        "220 scripted ESMTP\r\n",
        "250-scripted\r\n250-SIZE 100000\r\n250 AUTH LOGIN PLAIN\r\n",
        "235 ok\r\n",
        "250 ok\r\n",
        "250 ok\r\n",
        "550 no such user\r\n",
        "354 go\r\n",
        "250 queued as X1\r\n",
        "221 bye\r\n",
    ]);
    let d = block_on(send(&KernelTransport, &request(port, TlsMode::None))).unwrap();
    let got = h.join().unwrap();
    assert_eq!(d.reply.to_string(), "250 queued as X1");
    assert!(!d.tls);
    assert_eq!(d.refused().next().unwrap().address, "zed@example.org");
    assert_eq!(d.exit_code(), exit::SOME_REFUSED);
    assert!(
        got.starts_with(
            "EHLO client.test\r\nAUTH PLAIN AGFubmEAcHctMTIz\r\nMAIL FROM:<anna@example.org> SIZE="
        ),
        "{got}"
    );
    assert!(got.contains("RCPT TO:<bob@example.org>\r\nRCPT TO:<zed@example.org>\r\nDATA\r\n"));
    assert!(
        got.contains("\r\n\r\n..dot first\r\nsecond\r\n.\r\nQUIT\r\n"),
        "{got}"
    );
    assert!(
        !got.contains("Bcc") && got.matches("zed@").count() == 1,
        "{got}"
    );
}

#[test]
fn starttls_required_and_missing_fails_before_auth() {
    let (port, h) = server(vec![
        "220 scripted ESMTP\r\n",
        "250-scripted\r\n250 AUTH PLAIN\r\n",
        "221 bye\r\n",
    ]);
    let e = block_on(send(&KernelTransport, &request(port, TlsMode::StartTls))).unwrap_err();
    let got = h.join().unwrap();
    assert!(matches!(e, MailError::StartTlsNotOffered { .. }), "{e}");
    assert_eq!(e.exit_code(), exit::TLS);
    assert!(!got.contains("AUTH"), "no password without TLS: {got}");
    assert!(got.ends_with("QUIT\r\n"));
}

#[test]
fn data_after_the_starttls_answer_is_refused() {
    let (port, h) = server(vec![
        "220 scripted ESMTP\r\n",
        "250-scripted\r\n250 STARTTLS\r\n",
        "220 go ahead\r\n250 injected\r\n",
    ]);
    let e = block_on(send(&KernelTransport, &request(port, TlsMode::StartTls))).unwrap_err();
    drop(h);
    assert!(
        matches!(
            e,
            MailError::Protocol {
                step: "STARTTLS",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_silent_server_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        drop(s);
    });
    let mut req = request(port, TlsMode::None);
    req.timeouts.greeting = Duration::from_millis(300);
    let e = block_on(send(&KernelTransport, &req)).unwrap_err();
    assert!(
        matches!(
            e,
            MailError::Timeout {
                step: "greeting",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.exit_code(), exit::TIMEOUT);
    h.join().unwrap();
}

#[test]
fn garbage_and_refused_connections() {
    let (port, h) = server(vec!["220 scripted\r\n", "hello there\r\n"]);
    let e = block_on(send(&KernelTransport, &request(port, TlsMode::None))).unwrap_err();
    drop(h);
    assert!(matches!(e, MailError::BadReply { step: "EHLO", .. }), "{e}");
    assert_eq!(e.exit_code(), exit::PROTOCOL);

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = block_on(send(&KernelTransport, &request(port, TlsMode::None))).unwrap_err();
    assert!(matches!(e, MailError::Connect { .. }), "{e}");
    assert_eq!(e.exit_code(), exit::CONNECT);
}
