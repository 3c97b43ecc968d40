//! The `sixstack` appliance: configuration, the lab, and wiring drivers, the stack and
//! services into a running process. `main.rs` is only the command line over this.

#![forbid(unsafe_code)]

pub mod app;
pub mod cert_cmd;
pub mod client_run;
pub mod config;
pub mod control;
pub mod ftp_batch;
pub mod lab;
pub mod mail_cmd;
pub mod progress;
pub mod rexec_cmd;
pub mod scp_cmd;
pub mod stats_view;
pub mod vault_cmd;
pub mod workload_view;

/// The control socket of a lab's appliance: the default one for the default labs, one
/// of its own for every test lab.
pub fn lab_control_socket(lab: &lab::Lab) -> String {
    if lab.peer_ns == "sixpeer" || lab.peer_ns == "sixtap" {
        control::DEFAULT_SOCKET.to_string()
    } else {
        format!("/run/sixstack/{}.sock", lab.peer_ns)
    }
}

/// The configuration a batch client brings sixstack up with: the file given, else the
/// default lab's built-in one (the lab must be up).
pub fn client_config(path: Option<&std::path::Path>) -> Result<config::Config, String> {
    match path {
        Some(p) => config::Config::load(p).map_err(|e| e.to_string()),
        None => {
            let lab = lab::Lab::default_veth();
            if !lab.exists() {
                return Err(
                    "no link for sixstack: give --config (an appliance configuration), run \
                     `sixstack lab up`, or use --kernel"
                        .into(),
                );
            }
            config::Config::parse(&lab_config(&lab, None), "built-in lab config")
                .map_err(|e| e.to_string())
        }
    }
}

/// Where `sixstack up` keeps the lab's TLS material (`sixstack cert selfsigned` writes
/// here by default).
pub const LAB_TLS_DIR: &str = "/run/sixstack/lab-tls";

/// Makes sure the lab's TLS material exists in [`LAB_TLS_DIR`], creating it if not. Two
/// appliances starting at once cannot mix two CAs: the set is written to a private
/// directory and renamed into place whole.
pub fn ensure_lab_tls() -> Result<sixstack_tls::selfsigned::LabFiles, String> {
    let dir = std::path::Path::new(LAB_TLS_DIR);
    let files = sixstack_tls::selfsigned::LabFiles::in_dir(dir);
    if files.exist() {
        if lab_tls_consistent(&files) {
            return Ok(files);
        }
        // Material from different runs mixed up (a CA that did not sign the certificates):
        // made again.
        log::warn!(
            "{}: inconsistent lab TLS material, made anew",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
    // One temporary directory per call: threads of one process may race here too.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    sixstack_tls::selfsigned::create(&tmp, &cert_cmd::lab_names(), "lab-client")
        .map_err(|e| e.to_string())?;
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !files.exist() {
            return Err(format!("{}: {e}", dir.display()));
        }
    }
    Ok(files)
}

/// Whether the lab CA in `files` is the one its server and client chains end with.
fn lab_tls_consistent(files: &sixstack_tls::selfsigned::LabFiles) -> bool {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let ca = read(&files.ca);
    !ca.trim().is_empty()
        && read(&files.server_cert).trim_end().ends_with(ca.trim_end())
        && read(&files.client_cert).trim_end().ends_with(ca.trim_end())
}

/// The built-in configuration of `sixstack up` for a lab.
pub fn lab_config(lab: &lab::Lab, pcap: Option<&str>) -> String {
    let (driver, name, ns) = if lab.tap {
        ("tap", lab.app_if.as_str(), lab.peer_ns.as_str())
    } else {
        ("af_xdp", lab.app_if.as_str(), lab.app_ns.as_str())
    };
    let pcap = pcap
        .map(|p| format!("pcap = {:?}\n", p))
        .unwrap_or_default();
    let socket = lab_control_socket(lab);
    format!(
        r#"# sixstack on the lab link
[interface]
name = "{name}"
driver = "{driver}"
netns = "{ns}"
{pcap}
[addresses]
ipv4 = "{}/24"
ipv6 = ["{}/64"]

[control]
socket = "{socket}"

[tls]
cert = "{tls}/server.pem"
key = "{tls}/server.key"
client_ca = "{tls}/ca.pem"
client_auth = "optional"

[[service]]
kind = "echo"
port = 7

[[service]]
kind = "discard"
port = 9

[[service]]
kind = "chargen"
port = 19

[[service]]
kind = "tls-http"
port = 443

[[service]]
kind = "tls-echo"
port = 7443

[[service]]
kind = "starttls-echo"
port = 2525
"#,
        lab.stack4(),
        lab.stack6(),
        tls = LAB_TLS_DIR,
    )
}
