//! The mail client against Postfix: over sixstack's own sockets, STARTTLS on 25 and implicit
//! TLS on 465 with AUTH PLAIN and LOGIN, To/Cc/Bcc with an unknown recipient refused while
//! the others get the message, attachments (binary, PDF-like, non-ASCII name) decoded back
//! byte for byte from the Maildirs, a wrong password refused; and once over the kernel's
//! sockets from the appliance namespace.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::postfix::{self, Postfix};
use common::*;
use sixstack_smtp::*;

fn skip() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the mail interop tests need root (namespaces, Postfix)");
        return true;
    }
    if !postfix::available() {
        eprintln!(
            "skipped: Postfix is not installed (apt-get install postfix libsasl2-modules sasl2-bin)"
        );
        return true;
    }
    false
}

fn mb(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

fn request(pf: &Postfix, mode: TlsMode, auth: AuthChoice, password: &str) -> MailRequest {
    MailRequest {
        host: pf.addr.to_string(),
        port: if mode == TlsMode::Implicit { 465 } else { 25 },
        tls: TlsOptions {
            mode,
            server_name: postfix::SERVER_NAME.into(),
            ca: Some(pf.ca.clone()),
            cert: None,
            key: None,
        },
        auth,
        credentials: Some(Credentials {
            user: postfix::USER.into(),
            password: Zeroizing::new(password.into()),
        }),
        ehlo: EhloName::Auto,
        timeouts: Timeouts::default().capped(Duration::from_secs(15)),
        max_message: 4 << 20,
        message: Message {
            from: mb("Anna Sender <anna@lab.test>"),
            to: vec![mb("Bob <bob@lab.test>")],
            cc: vec![],
            bcc: vec![],
            subject: "plain".into(),
            body: b"hello\n".to_vec(),
            attachments: vec![],
        },
    }
}

fn binary() -> Vec<u8> {
    pattern(100_003, 5)
}

fn pdf_like() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    v.extend(pattern(3000, 9));
    v.extend(b"\n.\n..\n%%EOF\n");
    v
}

const BODY: &str = "Grüße aus dem Labor.\n.\n..a line with dots\nEnde\n";

/// The rich message: To, Cc, Bcc with an unknown Cc, a UTF-8 subject and body, three
/// attachments.
fn rich(pf: &Postfix) -> MailRequest {
    let mut r = request(pf, TlsMode::StartTls, AuthChoice::Auto, postfix::PASSWORD);
    r.message.to = vec![mb("Bob <bob@lab.test>"), mb("nobody@lab.test")];
    r.message.cc = vec![mb("Carl Ö <carl@lab.test>")];
    r.message.bcc = vec![mb("anna@lab.test")];
    r.message.subject = "Bericht für März ✓ — sixstack".into();
    r.message.body = BODY.as_bytes().to_vec();
    r.message.attachments = vec![
        Attachment::new("data.bin", binary()),
        Attachment::new("Bericht März.pdf", pdf_like()),
        Attachment {
            name: "notes".into(),
            data: b"x".to_vec(),
            content_type: Some("text/x-notes".into()),
        },
    ];
    r
}

/// A message as stored by Postfix (LF line ends): unfolded headers and the body.
struct Part {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn parse(msg: &[u8]) -> Part {
    let split = find(msg, b"\n\n").unwrap();
    let head = String::from_utf8(msg[..split].to_vec()).unwrap();
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    let headers = unfolded
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    Part {
        headers,
        body: msg[split + 2..].to_vec(),
    }
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn decoded(&self) -> Vec<u8> {
        match self.header("Content-Transfer-Encoding") {
            Some("base64") => sixstack_smtp::base64::decode(&self.body).unwrap(),
            _ => self.body.clone(),
        }
    }

    fn parts(&self) -> Vec<Part> {
        let ct = self.header("Content-Type").unwrap();
        let b = ct
            .split("boundary=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let delim = format!("\n--{b}");
        let body = [b"\n".as_slice(), &self.body].concat();
        let mut rest = body.as_slice();
        let mut pieces = Vec::new();
        while let Some(at) = find(rest, delim.as_bytes()) {
            pieces.push(rest[..at].to_vec());
            rest = &rest[at + delim.len()..];
            if rest.starts_with(b"--") {
                break;
            }
            rest = &rest[1..];
        }
        pieces.iter().skip(1).map(|p| parse(p)).collect()
    }
}

/// Decodes sixstack's encoded words (UTF-8, base64) in a header value.
fn words(v: &str) -> String {
    let mut out = String::new();
    for part in v.split_whitespace() {
        match part
            .strip_prefix("=?utf-8?B?")
            .and_then(|p| p.strip_suffix("?="))
        {
            Some(b) => out.push_str(
                &String::from_utf8(sixstack_smtp::base64::decode(b.as_bytes()).unwrap()).unwrap(),
            ),
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(part)
            }
        }
    }
    out
}

fn check_rich(pf: &Postfix, d: &Delivery) {
    assert!(d.tls);
    assert_eq!(d.auth, Some(Mechanism::Plain));
    let refused: Vec<_> = d.refused().collect();
    assert_eq!(refused.len(), 1, "{:?}", d.recipients);
    assert_eq!(refused[0].address, "nobody@lab.test");
    assert_eq!(refused[0].reply.code, 550);
    assert!(
        refused[0].reply.text().contains("User unknown"),
        "{}",
        refused[0].reply
    );
    assert_eq!(d.accepted().count(), 3);
    assert_eq!(d.exit_code(), exit::SOME_REFUSED);
    for mailbox in ["bob", "carl", "anna"] {
        let raw = pf.wait_message(mailbox, &d.message_id);
        let m = parse(&raw);
        assert_eq!(
            words(m.header("Subject").unwrap()),
            "Bericht für März ✓ — sixstack"
        );
        assert_eq!(m.header("From"), Some("Anna Sender <anna@lab.test>"));
        assert_eq!(m.header("To"), Some("Bob <bob@lab.test>, nobody@lab.test"));
        assert_eq!(words(m.header("Cc").unwrap()), "Carl Ö <carl@lab.test>");
        assert!(m.header("Bcc").is_none(), "Bcc stays out of the headers");
        assert!(
            !String::from_utf8_lossy(&raw[..find(&raw, b"\n\n").unwrap()])
                .contains("anna@lab.test>,")
        );
        assert!(m.header("Date").unwrap().ends_with("+0000"));
        let parts = m.parts();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].decoded(), BODY.replace('\n', "\r\n").as_bytes());
        assert_eq!(parts[1].decoded(), binary(), "binary attachment");
        assert_eq!(
            parts[1].header("Content-Disposition"),
            Some("attachment; filename=\"data.bin\"")
        );
        assert_eq!(parts[2].decoded(), pdf_like(), "PDF attachment");
        assert!(parts[2]
            .header("Content-Type")
            .unwrap()
            .starts_with("application/pdf;"));
        assert_eq!(
            parts[2].header("Content-Disposition"),
            Some("attachment; filename*=utf-8''Bericht%20M%C3%A4rz.pdf")
        );
        assert_eq!(parts[3].decoded(), b"x");
        assert!(parts[3]
            .header("Content-Type")
            .unwrap()
            .starts_with("text/x-notes;"));
    }
    assert!(pf.messages("nobody").is_empty());
}

/// Over sixstack's sockets: the rich message over STARTTLS (AUTH PLAIN), a message over
/// implicit TLS (AUTH LOGIN), a wrong password, and an unknown-only recipient list.
#[test]
fn postfix_over_the_stack() {
    if skip() {
        return;
    }
    let g = LabGuard::new(false);
    let pf = Postfix::start(&g.lab);
    let jobs = vec![
        ("starttls", rich(&pf)),
        ("implicit", {
            let mut r = request(&pf, TlsMode::Implicit, AuthChoice::Login, postfix::PASSWORD);
            r.message.subject = "implicit TLS".into();
            r
        }),
        (
            "wrong password",
            request(&pf, TlsMode::StartTls, AuthChoice::Auto, "not-the-password"),
        ),
        ("all refused", {
            let mut r = request(&pf, TlsMode::Implicit, AuthChoice::Plain, postfix::PASSWORD);
            r.message.to = vec![mb("nobody@lab.test"), mb("nemo@lab.test")];
            r
        }),
        ("wrong name", {
            let mut r = request(&pf, TlsMode::Implicit, AuthChoice::Plain, postfix::PASSWORD);
            r.tls.server_name = "other.sixstack.lab".into();
            r
        }),
    ];
    let (app, rx) = on_shard(&g.lab, move |net, tx| {
        let net = net.clone();
        let jobs = jobs.clone();
        net.clone().spawn(async move {
            let t = sixstack_transport::StackTransport::new(&net);
            for (name, req) in jobs {
                let r = send(&t, &req).await;
                tx.send((name, r)).unwrap();
            }
        });
    });
    let mut results = std::collections::HashMap::new();
    for _ in 0..5 {
        let (name, r) = rx
            .recv_timeout(Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("{e}: {}", pf.log()));
        results.insert(name, r);
    }
    app.stop().unwrap();

    let d = results.remove("starttls").unwrap();
    let d = d.unwrap_or_else(|e| panic!("{e}: {}", pf.log()));
    check_rich(&pf, &d);

    let d = results.remove("implicit").unwrap().unwrap();
    assert!(d.tls);
    assert_eq!(d.auth, Some(Mechanism::Login));
    assert_eq!(d.exit_code(), exit::OK);
    let m = parse(&pf.wait_message("bob", &d.message_id));
    assert_eq!(m.header("Subject"), Some("implicit TLS"));
    assert_eq!(m.body, b"hello\n");
    assert_eq!(
        m.header("Content-Type"),
        Some("text/plain; charset=us-ascii")
    );

    let e = results.remove("wrong password").unwrap().unwrap_err();
    assert!(
        matches!(e, MailError::AuthRefused(ref r) if r.code == 535),
        "{e}"
    );
    assert_eq!(e.exit_code(), exit::AUTH);
    assert!(!e.to_string().contains("not-the-password"));

    let e = results.remove("all refused").unwrap().unwrap_err();
    let MailError::AllRecipientsRefused(ref list) = e else {
        panic!("{e}")
    };
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|r| r.reply.code == 550));
    assert_eq!(e.exit_code(), exit::ALL_REFUSED);

    let e = results.remove("wrong name").unwrap().unwrap_err();
    assert!(matches!(e, MailError::Tls { .. }), "{e}");
    assert_eq!(e.exit_code(), exit::TLS);
}

/// Over the kernel's sockets from the appliance namespace: STARTTLS, AUTH LOGIN, two
/// recipients.
#[test]
fn postfix_over_kernel_sockets() {
    if skip() {
        return;
    }
    let g = LabGuard::new(false);
    let pf = Postfix::start(&g.lab);
    let mut req = request(&pf, TlsMode::StartTls, AuthChoice::Login, postfix::PASSWORD);
    req.message.to = vec![mb("bob@lab.test")];
    req.message.cc = vec![mb("carl@lab.test")];
    req.message.subject = "kernel".into();
    req.message.attachments = vec![Attachment::new("blob", binary())];
    req.ehlo = EhloName::Name("client.sixstack.lab".into());
    let d = in_ns(&g.lab.app_ns, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(send(&sixstack_transport::KernelTransport, &req))
            .map_err(|e| e.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", pf.log()));
    assert!(d.tls);
    assert_eq!(d.exit_code(), exit::OK);
    for mailbox in ["bob", "carl"] {
        let m = parse(&pf.wait_message(mailbox, &d.message_id));
        assert_eq!(m.header("Subject"), Some("kernel"));
        let received = m.header("Received").unwrap();
        assert!(
            received.starts_with("from client.sixstack.lab"),
            "{received}"
        );
        assert!(
            received.contains(&g.lab.kernel4().to_string()),
            "{received}"
        );
        let parts = m.parts();
        assert_eq!(parts[1].decoded(), binary());
        assert_eq!(
            parts[1].header("Content-Type"),
            Some("application/octet-stream; name=\"blob\"")
        );
    }
}

/// `sixstack mail send` on sixstack's own stack: implicit TLS, the password from the
/// vault, a file attached and the body attached again as a PDF that qpdf finds sound and
/// whose text poppler reads back; a wrong vault entry and a missing one refused with their
/// exit statuses.
#[test]
fn mail_send_command_with_a_pdf_over_the_stack() {
    if skip() {
        return;
    }
    use common::clients::*;
    use std::process::Command;
    let g = LabGuard::new(false);
    let pf = Postfix::start(&g.lab);
    let s = scratch("mail-send");
    let dir = &s.0;
    let v = vault(dir, &[("mail", postfix::PASSWORD), ("wrong", "nope")]);
    let link = lab_config_file(&g, dir);
    let body = "Quarterly report\n\nTotal   1234.50\nGrüße ✓\n";
    std::fs::write(dir.join("body.txt"), body).unwrap();
    std::fs::write(dir.join("data.bin"), binary()).unwrap();
    let send = |entry: &str, subject: &str| {
        let mut c = Command::new("ip");
        // Everything logged, so that the check below sees any secret a log line carries.
        c.env("RUST_LOG", "trace");
        c.args(["netns", "exec", &g.lab.app_ns, BIN, "mail", "send"])
            .args(["--server", &pf.addr.to_string(), "--tls", "implicit"])
            .args(["--tls-name", postfix::SERVER_NAME, "--ca"])
            .arg(&pf.ca)
            .args(["--user", postfix::USER, "--password-from", entry])
            .args(["--from", "anna@lab.test", "--to", "Bob <bob@lab.test>"])
            .args(["-s", subject, "--pdf", "report.pdf", "--timeout", "15"])
            .arg("--body")
            .arg(dir.join("body.txt"))
            .arg("--attach")
            .arg(dir.join("data.bin"))
            .arg("--vault")
            .arg(&v)
            .arg("--config")
            .arg(&link);
        run(&mut c)
    };
    let r = send("vault:mail", "report by mail send");
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("bob@lab.test: accepted"), "{}", r.out);
    let id = r
        .out
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(r.out.contains("over TLS, AUTH PLAIN"), "{}", r.out);
    let plain = format!("\0{}\0{}", postfix::USER, postfix::PASSWORD);
    for secret in [
        postfix::PASSWORD.to_string(),
        sixstack_smtp::base64::encode(plain.as_bytes()),
        sixstack_smtp::base64::encode(postfix::PASSWORD.as_bytes()),
    ] {
        assert!(
            !r.out.contains(&secret),
            "a secret in the output: {}",
            r.out
        );
    }
    let m = parse(&pf.wait_message("bob", &id));
    let parts = m.parts();
    assert_eq!(parts.len(), 3, "body, data.bin, report.pdf");
    assert_eq!(parts[0].decoded(), body.replace('\n', "\r\n").as_bytes());
    assert_eq!(parts[1].decoded(), binary());
    assert!(parts[2]
        .header("Content-Type")
        .unwrap()
        .starts_with("application/pdf;"));
    let pdf = dir.join("got.pdf");
    std::fs::write(&pdf, parts[2].decoded()).unwrap();
    // qpdf and poppler-utils are among the test packages tests/run installs.
    let out = Command::new("qpdf")
        .arg("--check")
        .arg(&pdf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qpdf: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Quarterly report"), "{text}");
    assert!(text.contains("1234.50"), "{text}");

    let r = send("vault:wrong", "wrong password");
    assert_eq!(r.code, exit::AUTH, "{}", r.out);
    let r = send("vault:absent", "no such entry");
    assert_eq!(r.code, exit::USAGE, "{}", r.out);
    assert!(r.out.contains("absent"), "{}", r.out);
    let r = send("pw-in-clear", "clear password");
    assert_eq!(r.code, exit::USAGE, "{}", r.out);
    assert!(r.out.contains("--insecure-password"), "{}", r.out);
}
