//! `sixstack`: the appliance daemon and its command line.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sixstack::app;
use sixstack::config::Config;
use sixstack::lab::Lab;
use sixstack_stack::IpAddress;

#[derive(Parser, Debug)]
#[command(
    name = "sixstack",
    version,
    about = "Kernel-bypass userspace TCP/IP appliance"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LabDriver {
    /// veth pair between namespaces, AF_XDP on the appliance end.
    AfXdp,
    /// TAP device in the peer namespace.
    Tap,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the appliance described by a TOML file until Ctrl-C.
    Run {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and exit.
    Check {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the default appliance on a lab link (built if missing, removed on exit).
    Up {
        /// Which driver the lab uses.
        #[arg(long, value_enum, default_value = "af-xdp")]
        driver: LabDriver,
        /// Record every frame to this pcap file.
        #[arg(long)]
        pcap: Option<String>,
        /// Queues of the veth lab (one shard each).
        #[arg(long, default_value_t = 2)]
        queues: u32,
    },
    /// Build, remove or show the lab link.
    Lab {
        #[command(subcommand)]
        action: LabAction,
        /// TAP lab instead of the veth lab.
        #[arg(long, global = true)]
        tap: bool,
        /// Queues of the veth lab (one shard each).
        #[arg(long, global = true, default_value_t = 2)]
        queues: u32,
        /// The kernel-only lab with offloads on (sixkapp/sixkpeer), for benchmarks.
        #[arg(long, global = true)]
        kernel_offloads: bool,
        /// The jumbo-frame lab, MTU 9000 (sixjapp/sixjpeer), for benchmarks.
        #[arg(long, global = true, conflicts_with = "kernel_offloads")]
        jumbo: bool,
    },
    /// Send echo requests from the stack (the lab's config unless --config is given; the
    /// link must not be in use by a running appliance).
    Ping {
        /// Destination address (IPv4 or IPv6).
        dest: String,
        /// The configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Number of requests.
        #[arg(long, short = 'c', default_value_t = 3)]
        count: u16,
        /// Payload bytes.
        #[arg(long, short = 's', default_value_t = 56)]
        size: usize,
    },
    /// Live per-shard counters of a running appliance, read over its control socket.
    Stats {
        /// The control socket.
        #[arg(long, default_value = sixstack::control::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Refresh every SECS seconds, with per-second rates.
        #[arg(long, value_name = "SECS")]
        watch: Option<f64>,
    },
    /// Proxy listeners of a running appliance: drain a backend (no new connections, open
    /// ones finish) or enable it again.
    Proxy {
        #[command(subcommand)]
        action: ProxyAction,
    },
    /// The workload managers of a running appliance: policy, velocity of work per service
    /// and performance group, the busiest tasks, termination statistics; `set KEY=VALUE
    /// ...` changes the policy at run time (e.g. `set enabled=false`, `set cicsint=4000`).
    Workload {
        /// The control socket.
        #[arg(long, default_value = sixstack::control::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// `set KEY=VALUE ...`: change these settings of `[workload]`.
        #[arg(num_args = 0.., value_name = "set KEY=VALUE")]
        args: Vec<String>,
    },
    /// FTP server administration.
    Ftp {
        #[command(subcommand)]
        action: FtpAction,
    },
    /// The encrypted password vault every batch client reads its passwords from.
    Vault {
        #[command(subcommand)]
        action: sixstack::vault_cmd::VaultAction,
        #[command(flatten)]
        vault: sixstack::vault_cmd::VaultArgs,
    },
    /// Send mail through an SMTP server (STARTTLS or implicit TLS, AUTH PLAIN/LOGIN).
    Mail {
        #[command(subcommand)]
        action: MailAction,
    },
    /// Run a command on a host's rexec server (TCP 512) and exit with its status
    /// (255 when sixstack could not learn it).
    Rexec(Box<sixstack::rexec_cmd::RexecCmd>),
    /// Copy files and run commands on SSH hosts through scpd, the pass-through daemon
    /// (a script of DAEMON, HOST, INPUT+STOR, OUTPUT+RETR, EXEC, ...).
    Scp(Box<sixstack::scp_cmd::ScpArgs>),
    /// The SSH pass-through daemon appliances copy through (runs on a Linux host, kernel
    /// sockets; public-key SSH only; nothing it relays touches its disk).
    Scpd(sixstack::scp_cmd::ScpdArgs),
    /// Convert a text report (plain, ASA or machine carriage control) to PDF. A password
    /// given as vault:NAME is read from the vault.
    Txt2pdf {
        #[command(flatten)]
        args: Box<sixstack_txt2pdf::cli::Txt2PdfArgs>,
        #[command(flatten)]
        vault: sixstack::vault_cmd::VaultArgs,
    },
    /// TLS certificates: lab material, and what a file or a live server holds.
    Cert {
        #[command(subcommand)]
        action: CertAction,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand, Debug)]
enum FtpAction {
    /// Set USER's password in the security file (stored as an Argon2id hash; asked twice on
    /// a terminal, else read as one line from standard input).
    Passwd {
        /// The user (`[[user]] name`).
        user: String,
        /// The security file.
        #[arg(long)]
        users: PathBuf,
    },
    /// Run a batch FTP script (OPEN, AUTH TLS, USER, PASS VAULT, TYPE, INPUT+STOR,
    /// OUTPUT+RETR, MPUT, MGET, ...) on sixstack's own stack, or the kernel's with
    /// --kernel. Exits 1 with the failing step's line when a step fails, 2 when the script
    /// is wrong (then nothing runs).
    Batch(sixstack::ftp_batch::BatchArgs),
}

#[derive(Subcommand, Debug)]
enum MailAction {
    /// Send one message: the body from --body or standard input, files with --attach, the
    /// body as a PDF too with --pdf. Exits 0 when every recipient took it, 16 when some
    /// refused, 2 on wrong options, 10-18 on failures (see the README).
    Send(Box<sixstack::mail_cmd::MailArgs>),
}

#[derive(Subcommand, Debug)]
enum ProxyAction {
    /// Stop new connections to BACKEND of LISTENER; open connections finish.
    Drain {
        /// The listener's name (`[[proxy]] name`).
        listener: String,
        /// The backend: its name, its address as configured, or its position (1-based).
        backend: String,
        /// The control socket.
        #[arg(long, default_value = sixstack::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Let BACKEND of LISTENER take new connections again.
    Enable {
        /// The listener's name (`[[proxy]] name`).
        listener: String,
        /// The backend: its name, its address as configured, or its position (1-based).
        backend: String,
        /// The control socket.
        #[arg(long, default_value = sixstack::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum CertAction {
    /// Create a lab CA with a server and a client certificate (ECDSA P-256).
    Selfsigned {
        /// Directory to write ca.pem, server.pem/.key, client.pem/.key into.
        #[arg(long, default_value = sixstack::LAB_TLS_DIR)]
        dir: PathBuf,
        /// Server names (DNS names or IP addresses); default: localhost and the lab
        /// addresses.
        #[arg(long = "name")]
        names: Vec<String>,
        /// The client certificate's common name (the user it signs on as).
        #[arg(long, default_value = "lab-client")]
        client: String,
    },
    /// Describe the certificates of a PEM file, or of a live server's chain.
    Info {
        /// A PEM file.
        #[arg(required_unless_present = "connect", conflicts_with = "connect")]
        file: Option<PathBuf>,
        /// HOST:PORT of a TLS server.
        #[arg(long)]
        connect: Option<String>,
        /// Server name to ask for (SNI); default: the host.
        #[arg(long)]
        sni: Option<String>,
        /// Network namespace to connect from.
        #[arg(long)]
        netns: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum LabAction {
    /// Create the namespaces and link.
    Up,
    /// Remove them.
    Down,
    /// Show them.
    Status,
}

fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            log::warn!("cannot catch signal {sig}: {e}");
        }
    }
    stop
}

fn load(path: &std::path::Path) -> Result<Config, String> {
    Config::load(path).map_err(|e| e.to_string())
}

fn lab_for(tap: bool, queues: u32) -> Lab {
    if tap {
        Lab::default_tap()
    } else {
        let mut lab = Lab::default_veth();
        lab.queues = queues.clamp(1, 64);
        lab
    }
}

fn cmd_run(cfg: Config) -> Result<(), String> {
    let stop = stop_flag();
    let fin = app::run(cfg, stop).map_err(|e| e.to_string())?;
    for (i, s) in fin.iter().enumerate() {
        log::info!("shard {i} stopped: {s:?}");
    }
    Ok(())
}

fn cmd_up(driver: LabDriver, pcap: Option<String>, queues: u32) -> Result<(), String> {
    let lab = lab_for(matches!(driver, LabDriver::Tap), queues);
    let created = if lab.exists() {
        false
    } else {
        lab.up().map_err(|e| e.to_string())?;
        true
    };
    let stop = stop_flag();
    sixstack::ensure_lab_tls()?;
    let mut text = sixstack::lab_config(&lab, pcap.as_deref());
    // The veth has no RSS hardware: emulate it on the peer's side so each flow lands on
    // the queue a NIC would pick, and tell the stack the same hash.
    let _emulator = if lab.tap {
        None
    } else {
        match lab.emulate_rss() {
            Ok(e) => {
                text = text.replace("netns = ", "rss = \"lab\"\nnetns = ");
                Some(e)
            }
            Err(e) => {
                log::warn!("no RSS emulation on the lab link ({e}); replies are handed over");
                None
            }
        }
    };
    println!("{}", lab.describe());
    println!(
        "services: echo 7, discard 9, chargen 19 (TCP and UDP); tls-http 443, tls-echo 7443, \
         starttls-echo 2525 (CA: {}/ca.pem); Ctrl-C stops",
        sixstack::LAB_TLS_DIR
    );
    let result = Config::parse(&text, "built-in lab config")
        .map_err(|e| e.to_string())
        .and_then(|cfg| app::run(cfg, stop).map_err(|e| e.to_string()));
    if created {
        lab.down();
        println!("lab removed");
    }
    result.map(|fin| {
        for (i, s) in fin.iter().enumerate() {
            log::info!("shard {i} stopped: {s:?}");
        }
    })
}

fn cmd_ping(dest: &str, config: Option<PathBuf>, count: u16, size: usize) -> Result<(), String> {
    let ip = app::parse_dest(dest).ok_or_else(|| format!("'{dest}' is not an IP address"))?;
    let cfg = match config {
        Some(p) => load(&p)?,
        None => {
            let lab = Lab::default_veth();
            if !lab.exists() {
                return Err("the lab is down: run `sixstack lab up` or give --config".into());
            }
            Config::parse(&sixstack::lab_config(&lab, None), "built-in lab config")
                .map_err(|e| e.to_string())?
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let running = app::start(
        cfg,
        Arc::new(move |net: &sixstack_stack::Net, shard| {
            if shard != 0 {
                return;
            }
            let Ok(tx) = tx.lock().map(|t| t.clone()) else {
                return;
            };
            let n = net.clone();
            net.spawn(async move {
                let mut ok = 0u16;
                for seq in 0..count {
                    let r = n
                        .ping(IpAddress::from(ip), seq, size, Duration::from_secs(2))
                        .await;
                    match &r {
                        Ok(rep) => {
                            ok += 1;
                            println!(
                                "{} bytes from {}: seq={} time={:.3} ms",
                                rep.bytes,
                                rep.from,
                                rep.seq,
                                rep.rtt.as_secs_f64() * 1e3
                            );
                        }
                        Err(e) => println!("seq={seq}: {e}"),
                    }
                    if seq + 1 < count {
                        n.sleep(Duration::from_millis(500)).await;
                    }
                }
                let _ = tx.send(ok);
            });
        }),
    )
    .map_err(|e| e.to_string())?;
    let ok = rx.recv().unwrap_or(0);
    let _ = running.stop();
    println!("{count} sent, {ok} answered");
    if ok == 0 {
        return Err(format!("no reply from {ip}"));
    }
    Ok(())
}

/// The smallest password `sixstack ftp passwd` accepts, in characters.
const MIN_PASSWORD: usize = 8;

fn ftp_passwd(user: &str, users: &std::path::Path) -> Result<(), String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("new password for {user}: "))
            .map_err(|e| format!("reading the password: {e}"))?;
        let again = rpassword::prompt_password("again: ")
            .map_err(|e| format!("reading the password: {e}"))?;
        if first != again {
            return Err("the passwords differ; nothing changed".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD} characters; nothing changed"
        ));
    }
    sixstack_ftp::users::set_password(users, user, &password).map_err(|e| e.to_string())?;
    println!("password of {user} set in {}", users.display());
    Ok(())
}

fn main() -> ExitCode {
    // Before any thread starts: large freed blocks (a password check's work area) go
    // back to the kernel instead of staying resident (drivers/src/memory.rs).
    let large_blocks_returned = sixstack_drivers::memory::return_large_blocks();
    let cli = Cli::parse();
    // Batch clients print their own step lines; the stack's start-up notes would only
    // clutter a job's log.
    let quiet = matches!(
        cli.cmd,
        Cmd::Ftp {
            action: FtpAction::Batch(_)
        } | Cmd::Vault { .. }
            | Cmd::Mail { .. }
            | Cmd::Rexec(_)
            | Cmd::Scp(_)
            | Cmd::Txt2pdf { .. }
    );
    let level = if quiet { "warn" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    if !large_blocks_returned {
        log::debug!("the C library keeps its own mmap threshold");
    }
    let r = match cli.cmd {
        Cmd::Run { config } => load(&config).and_then(cmd_run),
        Cmd::Check { config } => load(&config).and_then(|cfg| {
            app::tls_factory(&cfg).map_err(|e| e.to_string())?;
            println!("{}: ok", config.display());
            Ok(())
        }),
        Cmd::Cert { action } => match action {
            CertAction::Selfsigned { dir, names, client } => {
                let names = if names.is_empty() {
                    sixstack::cert_cmd::lab_names()
                } else {
                    names
                };
                sixstack::cert_cmd::selfsigned(&dir, &names, &client).map(|s| println!("{s}"))
            }
            CertAction::Info {
                file,
                connect,
                sni,
                netns,
            } => match (file, connect) {
                (Some(f), _) => sixstack::cert_cmd::info_file(&f).map(|s| println!("{s}")),
                (None, Some(c)) => {
                    sixstack::cert_cmd::info_connect(&c, sni.as_deref(), netns.as_deref())
                        .map(|s| println!("{s}"))
                }
                (None, None) => Err("give a FILE or --connect HOST:PORT".into()),
            },
        },
        Cmd::Up {
            driver,
            pcap,
            queues,
        } => cmd_up(driver, pcap, queues),
        Cmd::Lab {
            action,
            tap,
            queues,
            kernel_offloads,
            jumbo,
        } => {
            let lab = if kernel_offloads {
                Lab::kernel_offloads()
            } else if jumbo {
                Lab::jumbo()
            } else {
                lab_for(tap, queues)
            };
            match action {
                LabAction::Up => {
                    if lab.exists() {
                        println!("lab is already up\n{}", lab.describe());
                        Ok(())
                    } else {
                        lab.up()
                            .map(|()| println!("{}", lab.describe()))
                            .map_err(|e| e.to_string())
                    }
                }
                LabAction::Down => {
                    lab.down();
                    println!("lab removed");
                    Ok(())
                }
                LabAction::Status => {
                    println!("{}", lab.status());
                    Ok(())
                }
            }
        }
        Cmd::Ping {
            dest,
            config,
            count,
            size,
        } => cmd_ping(&dest, config, count, size),
        Cmd::Stats {
            socket,
            json,
            watch,
        } => sixstack::stats_view::stats_command(&socket, json, watch),
        Cmd::Workload { socket, json, args } => match args.split_first() {
            None => sixstack::workload_view::workload_command(&socket, json, &[]),
            Some((verb, settings)) if verb == "set" && !settings.is_empty() => {
                sixstack::workload_view::workload_command(&socket, json, settings)
            }
            Some(_) => Err("usage: sixstack workload [--json] [set KEY=VALUE ...]".into()),
        },
        Cmd::Ftp {
            action: FtpAction::Passwd { user, users },
        } => ftp_passwd(&user, &users),
        Cmd::Ftp {
            action: FtpAction::Batch(args),
        } => return exit_with(sixstack::ftp_batch::run(args)),
        Cmd::Mail {
            action: MailAction::Send(args),
        } => return exit_with(sixstack::mail_cmd::run(*args)),
        Cmd::Rexec(args) => return exit_with(sixstack::rexec_cmd::run(*args)),
        Cmd::Scp(args) => return exit_with(sixstack::scp_cmd::run(*args)),
        Cmd::Scpd(args) => sixstack::scp_cmd::scpd(args),
        Cmd::Txt2pdf { args, vault } => txt2pdf(*args, &vault),
        Cmd::Vault { action, vault } => sixstack::vault_cmd::run(&vault, action).map(|out| {
            if !out.is_empty() {
                println!("{out}");
            }
        }),
        Cmd::Proxy { action } => {
            let (drain, listener, backend, socket) = match action {
                ProxyAction::Drain {
                    listener,
                    backend,
                    socket,
                } => (true, listener, backend, socket),
                ProxyAction::Enable {
                    listener,
                    backend,
                    socket,
                } => (false, listener, backend, socket),
            };
            sixstack::control::proxy_command(&socket, drain, &listener, &backend)
                .map(|line| println!("{line}"))
                .map_err(|e| e.to_string())
        }
        Cmd::Version => {
            println!("sixstack {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sixstack: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sixstack txt2pdf`: passwords given as vault:NAME come from the vault.
fn txt2pdf(
    mut args: sixstack_txt2pdf::cli::Txt2PdfArgs,
    vault: &sixstack::vault_cmd::VaultArgs,
) -> Result<(), String> {
    for pw in [&mut args.user_password, &mut args.owner_password] {
        if let Some(name) = pw.as_deref().and_then(|p| p.strip_prefix("vault:")) {
            *pw = Some(vault.password(name)?.to_string());
        }
    }
    args.run().map_err(|e| e.to_string())
}

/// A client's exit status as the process's.
fn exit_with(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status.clamp(0, 255)).unwrap_or(1))
}
