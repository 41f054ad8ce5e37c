//! `loupe certs`: a plant's own certificate authority, node certificates and bearer tokens,
//! so that TLS, mutual TLS and tokens need no other tool.
//!
//! ```sh
//! loupe certs ca --out tls/                              # tls/ca.crt, tls/ca.key
//! loupe certs issue classify --ca tls/ --dns classify --ip 10.0.0.5 --out tls/
//! loupe certs issue runner --ca tls/ --out tls/          # a client certificate (mTLS)
//! loupe certs token --out tls/runner.token               # 256 random bits, hex
//! ```
//!
//! Keys are ECDSA P-256, written with mode 0600. Issued certificates serve both as server
//! and client certificates (a node's certificate can also be its client identity).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// What `loupe certs` makes.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// A new certificate authority: `ca.crt` (give it to every node and client) and `ca.key`
    /// (keep it offline).
    Ca {
        /// Folder to write `ca.crt` and `ca.key` to.
        #[arg(long)]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Loupe plant CA")]
        name: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// A certificate for a node or a client, signed by the CA: `NAME.crt`, `NAME.key`.
    Issue {
        /// Common name; also a DNS name of the certificate (the subject that `auth.certificates`
        /// rules and mTLS callers are named by).
        name: String,
        /// Folder holding `ca.crt` and `ca.key`.
        #[arg(long)]
        ca: PathBuf,
        /// Folder to write `NAME.crt` and `NAME.key` to.
        #[arg(long)]
        out: PathBuf,
        /// More DNS names the node is reached by (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// IP addresses the node is reached by (repeatable; `127.0.0.1` is always included).
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<IpAddr>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// A new random bearer token (256 bits, hex) for `auth.tokens`.
    Token {
        /// Write it to this file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `loupe certs`.
pub fn certs(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ca { out, name, days } => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = named(&name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            validity(&mut params, days);
            let cert = params.self_signed(&key)?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            write(&out.join("ca.crt"), &cert.pem(), 0o644)?;
            write(&out.join("ca.key"), &key.serialize_pem(), 0o600)?;
            println!(
                "wrote {} and {}",
                out.join("ca.crt").display(),
                out.join("ca.key").display()
            );
        }
        Command::Issue {
            name,
            ca,
            out,
            dns,
            ips,
            days,
        } => {
            let ca_pem = std::fs::read_to_string(ca.join("ca.crt"))
                .with_context(|| format!("cannot read {}", ca.join("ca.crt").display()))?;
            let ca_key = KeyPair::from_pem(
                &std::fs::read_to_string(ca.join("ca.key"))
                    .with_context(|| format!("cannot read {}", ca.join("ca.key").display()))?,
            )?;
            let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
                .context("ca.crt is not a certificate rcgen can sign with")?;
            let mut names = vec![name.clone()];
            names.extend(dns);
            names.push("localhost".into());
            names.dedup();
            let mut params = CertificateParams::new(names)?;
            let mut all_ips: Vec<IpAddr> = ips;
            all_ips.push(IpAddr::from([127, 0, 0, 1]));
            all_ips.dedup();
            params
                .subject_alt_names
                .extend(all_ips.into_iter().map(SanType::IpAddress));
            params.distinguished_name = named(&name);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            validity(&mut params, days);
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let (crt, key_path) = (
                out.join(format!("{name}.crt")),
                out.join(format!("{name}.key")),
            );
            write(&crt, &cert.pem(), 0o644)?;
            write(&key_path, &key.serialize_pem(), 0o600)?;
            println!("wrote {} and {}", crt.display(), key_path.display());
        }
        Command::Token { out } => {
            let token = random_token()?;
            match out {
                Some(path) => {
                    write(&path, &format!("{token}\n"), 0o600)?;
                    println!("wrote {}", path.display());
                }
                None => println!("{token}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn named(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "Loupe");
    dn
}

/// Valid from yesterday (clocks differ) for `days` days.
fn validity(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now();
    let (y, m, d) = day_of(now - Duration::from_secs(86_400));
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day_of(now + Duration::from_secs(86_400 * u64::from(days)));
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

/// The UTC calendar day of a time.
fn day_of(t: SystemTime) -> (i32, u8, u8) {
    let days = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    civil_from_days(days)
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    ((y + i64::from(m <= 2)) as i32, m as u8, d as u8)
}

/// 256 bits from the operating system's random source, hex.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the operating system's random source: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a new file with `mode` (never widening an existing key file's mode).
fn write(path: &Path, content: &str, mode: u32) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
    }

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
