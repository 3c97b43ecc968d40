//! The `sixstack` appliance: configuration, the lab, and wiring drivers, the stack and
//! services into a running process. `main.rs` is only the command line over this.

#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod control;
pub mod lab;
pub mod stats_view;

/// The control socket of a lab's appliance: the default one for the default labs, one
/// of its own for every test lab.
pub fn lab_control_socket(lab: &lab::Lab) -> String {
    if lab.peer_ns == "sixpeer" || lab.peer_ns == "sixtap" {
        control::DEFAULT_SOCKET.to_string()
    } else {
        format!("/run/sixstack/{}.sock", lab.peer_ns)
    }
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

[[service]]
kind = "echo"
port = 7

[[service]]
kind = "discard"
port = 9

[[service]]
kind = "chargen"
port = 19
"#,
        lab.stack4(),
        lab.stack6()
    )
}
