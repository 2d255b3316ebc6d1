//! Lays out the release binary's idle code together.
//!
//! Idle, the agent runs about 800 of its functions (870 KiB of code), but in link order they
//! lie scattered over 13 MiB of text, and the kernel maps code in 64 KiB windows around each
//! page it faults in: 6.8 MiB of code stayed resident to run them. `symbol-order.txt` lists
//! them (made by `target/release/symbol-order`, see tests/README.md), and lld's
//! `--symbol-ordering-file` puts them first in the text. Symbols the list names but the
//! binary lacks (a function renamed since) are skipped without a warning; the list only
//! decides order, never what is linked.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=symbol-order.txt");
    println!("cargo::rerun-if-env-changed=LOGOPS_NO_SYMBOL_ORDER");
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var_os("LOGOPS_NO_SYMBOL_ORDER").is_some()
        || !links_with_rust_lld()
    {
        return;
    }
    let list =
        std::path::Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("symbol-order.txt");
    println!(
        "cargo::rustc-link-arg-bin=logops-agent=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo::rustc-link-arg-bin=logops-agent=-Wl,--no-warn-symbol-ordering");
}

/// Whether the binary is linked by lld, the only linker here that takes an ordering file:
/// rustc's default on x86_64 Linux (GNU) since 1.90, unless the build chose another linker.
fn links_with_rust_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
