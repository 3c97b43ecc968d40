//! Tests that concurrent writers, threads and processes, never lose an entry.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use super::*;
use crate::test_support::{fast_params, pass, ScratchDir};

const CHILD_VAULT_ENV: &str = "SIXSTACK_VAULT_TEST_CHILD_VAULT";
const CHILD_ID_ENV: &str = "SIXSTACK_VAULT_TEST_CHILD_ID";
const PASSPHRASE: &str = "concurrent writers";
const SETS_PER_WRITER: usize = 20;

/// Opens the vault at `path` and sets `SETS_PER_WRITER` names of its own.
fn write_names(path: &Path, writer: &str) {
    let mut vault = Vault::open(path, &pass(PASSPHRASE)).unwrap();
    for n in 0..SETS_PER_WRITER {
        vault
            .set(&format!("{writer}-{n}"), &format!("secret-{writer}-{n}"))
            .unwrap();
    }
}

/// Checks that every writer's names are present with the right secrets.
fn assert_all_present(path: &Path, writers: &[String]) {
    let vault = Vault::open(path, &pass(PASSPHRASE)).unwrap();
    assert_eq!(
        vault.len(),
        writers.len() * SETS_PER_WRITER,
        "{:?}",
        vault.list()
    );
    for writer in writers {
        for n in 0..SETS_PER_WRITER {
            let name = format!("{writer}-{n}");
            assert_eq!(
                vault.get(&name).unwrap().as_str(),
                format!("secret-{writer}-{n}")
            );
        }
    }
}

#[test]
fn concurrent_threads_lose_no_entry() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    Vault::init_with(&path, &pass(PASSPHRASE), fast_params()).unwrap();
    let writers: Vec<String> = (0..8).map(|t| format!("thread{t}")).collect();
    std::thread::scope(|scope| {
        for writer in &writers {
            let path = &path;
            scope.spawn(move || write_names(path, writer));
        }
    });
    assert_all_present(&path, &writers);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Run as a child process by `concurrent_processes_lose_no_entry`; does nothing when
/// run by the test harness itself.
#[test]
fn child_writer() {
    let (Ok(path), Ok(id)) = (std::env::var(CHILD_VAULT_ENV), std::env::var(CHILD_ID_ENV)) else {
        return;
    };
    write_names(Path::new(&path), &id);
}

#[test]
fn concurrent_processes_lose_no_entry() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    Vault::init_with(&path, &pass(PASSPHRASE), fast_params()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|c| {
            Command::new(&exe)
                .args([
                    "vault::concurrency_tests::child_writer",
                    "--exact",
                    "--test-threads=1",
                    "--quiet",
                ])
                .env(CHILD_VAULT_ENV, &path)
                .env(CHILD_ID_ENV, format!("proc{c}"))
                .spawn()
                .unwrap()
        })
        .collect();
    // Two threads of this process write at the same time.
    std::thread::scope(|scope| {
        for t in 0..2 {
            let path = &path;
            scope.spawn(move || write_names(path, &format!("parent{t}")));
        }
    });
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let writers: Vec<String> = ["proc0", "proc1", "proc2", "parent0", "parent1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_all_present(&path, &writers);
}
