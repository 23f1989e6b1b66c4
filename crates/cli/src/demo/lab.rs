//! The demo's hosts: network namespaces with their own addresses on a private bridge, or
//! loopback ports where namespaces cannot be made.
//!
//! With namespaces, each host is `hbl<N>-<host>` with `eth0` at `10.<N>.0.<i>/24`, every
//! `eth0` plugged into a bridge in `hbl<N>-sw`, and this namespace plugged in too at
//! `10.<N>.0.1` (where HAProxy and harbinger run). `N` is claimed atomically by creating
//! the link `hbl<N>r` (a second lab running at the same time takes another `N`). A cut
//! link is `eth0` set down inside the host: packets to it are dropped, so clients and
//! health checks see timeouts, as when a real host dies. Everything is removed on drop.
//!
//! On loopback every host is `127.0.0.1` with ports of its own, and a cut link is
//! approximated by stopping the host's processes (SIGSTOP): connections are still
//! accepted by the kernel but nothing answers, so clients time out too.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// How the demo's hosts are made (`--hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostMode {
    /// Network namespaces when possible (root and iproute2), else loopback.
    Auto,
    /// Network namespaces, or fail.
    Netns,
    /// Loopback ports.
    Loopback,
}

/// The hosts of a demo run.
#[derive(Debug)]
pub struct Lab {
    /// `hbl<N>` when namespaces are used.
    prefix: Option<String>,
    addrs: BTreeMap<String, String>,
    /// Why loopback is used, when namespaces were wanted.
    pub fallback: Option<String>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Lab {
    /// Makes the hosts `hosts` as `mode` says.
    ///
    /// # Errors
    /// `Netns` and the namespaces cannot be made.
    pub fn new(mode: HostMode, hosts: &[&str]) -> anyhow::Result<Self> {
        let loopback = |fallback: Option<String>| Lab {
            prefix: None,
            addrs: hosts.iter().map(|h| ((*h).to_string(), "127.0.0.1".to_string())).collect(),
            fallback,
        };
        match mode {
            HostMode::Loopback => Ok(loopback(None)),
            HostMode::Netns => Self::namespaces(hosts),
            HostMode::Auto => match Self::namespaces(hosts) {
                Ok(lab) => Ok(lab),
                Err(e) => Ok(loopback(Some(format!("{e:#}")))),
            },
        }
    }

    fn namespaces(hosts: &[&str]) -> anyhow::Result<Self> {
        if !rustix::process::geteuid().is_root() {
            bail!("network namespaces need root");
        }
        // Claim a free N: `ip link add` fails when hbl<N>r exists.
        let start = 200 + std::process::id() % 50;
        let mut claimed = None;
        let mut last = String::new();
        for k in 0..55 {
            let n = 200 + (start - 200 + k) % 55;
            let (r, s) = (format!("hbl{n}r"), format!("hbl{n}s"));
            match ip(&["link", "add", &r, "type", "veth", "peer", "name", &s]) {
                Ok(()) => {
                    claimed = Some(n);
                    break;
                }
                Err(e) => last = format!("{e:#}"),
            }
        }
        let Some(n) = claimed else { bail!("no free lab number (200-254): {last}") };
        let prefix = format!("hbl{n}");
        let mut lab = Lab { prefix: Some(prefix.clone()), addrs: BTreeMap::new(), fallback: None };
        // From here on, dropping `lab` removes what was made.
        let sw = format!("{prefix}-sw");
        ip(&["netns", "add", &sw])?;
        ip(&["netns", "exec", &sw, "ip", "link", "add", "br0", "type", "bridge"])?;
        ip(&["netns", "exec", &sw, "ip", "link", "set", "br0", "up"])?;
        let (r, s) = (format!("{prefix}r"), format!("{prefix}s"));
        ip(&["link", "set", &s, "netns", &sw])?;
        ip(&["netns", "exec", &sw, "ip", "link", "set", &s, "master", "br0", "up"])?;
        ip(&["addr", "add", &format!("10.{n}.0.1/24"), "dev", &r])?;
        ip(&["link", "set", &r, "up"])?;
        for (i, host) in hosts.iter().enumerate() {
            let ns = format!("{prefix}-{host}");
            let (h, s) = (format!("{prefix}h{i}"), format!("{prefix}s{i}"));
            let addr = format!("10.{n}.0.{}", i + 2);
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &h, "type", "veth", "peer", "name", &s])?;
            ip(&["link", "set", &h, "netns", &ns])?;
            ip(&["link", "set", &s, "netns", &sw])?;
            ip(&["netns", "exec", &sw, "ip", "link", "set", &s, "master", "br0", "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &h, "name", "eth0"])?;
            ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "eth0", "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
            lab.addrs.insert((*host).to_string(), addr);
        }
        Ok(lab)
    }

    /// Whether hosts are network namespaces.
    pub fn is_netns(&self) -> bool {
        self.prefix.is_some()
    }

    /// The address of `host`.
    pub fn addr(&self, host: &str) -> String {
        self.addrs.get(host).cloned().unwrap_or_else(|| "127.0.0.1".into())
    }

    /// Every host and its address.
    pub fn addrs(&self) -> &BTreeMap<String, String> {
        &self.addrs
    }

    /// The command prefix that runs a program on a host, with `{host}` for the host id
    /// (for the actuators' templates); empty on loopback.
    pub fn wrapper_template(&self) -> Vec<String> {
        match &self.prefix {
            Some(p) => vec!["ip".into(), "netns".into(), "exec".into(), format!("{p}-{{host}}")],
            None => Vec::new(),
        }
    }

    /// A command running `program` on `host`.
    pub fn command(&self, host: &str, program: &std::path::Path) -> tokio::process::Command {
        match &self.prefix {
            Some(p) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", &format!("{p}-{host}")]).arg(program);
                c
            }
            None => tokio::process::Command::new(program),
        }
    }

    /// Cuts `host`'s link (namespaces only; on loopback the caller stops the processes).
    ///
    /// # Errors
    /// `ip` fails.
    pub fn cut(&self, host: &str) -> anyhow::Result<()> {
        match &self.prefix {
            Some(p) => ip(&["netns", "exec", &format!("{p}-{host}"), "ip", "link", "set", "eth0", "down"]),
            None => bail!("no link to cut on loopback"),
        }
    }

    /// What the hosts are, in words.
    pub fn describe(&self) -> String {
        match &self.prefix {
            Some(p) => format!(
                "hosts are network namespaces {p}-* on a private bridge: {}",
                self.addrs.iter().map(|(h, a)| format!("{h} {a}")).collect::<Vec<_>>().join(", ")
            ),
            None => match &self.fallback {
                Some(why) => format!("hosts are loopback ports (no network namespaces: {why})"),
                None => "hosts are loopback ports".into(),
            },
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let Some(p) = &self.prefix else { return };
        for host in self.addrs.keys() {
            let _gone = ip(&["netns", "del", &format!("{p}-{host}")]);
        }
        let _gone = ip(&["netns", "del", &format!("{p}-sw")]);
        let _gone = ip(&["link", "del", &format!("{p}r")]);
    }
}
