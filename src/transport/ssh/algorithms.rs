//! Algorithm preferences from ssh settings, in ssh's list syntax: `a,b`
//! replaces the default list, `+a` appends, `-a*` removes, `^a` puts first.
//! Names russh does not implement are dropped; an empty result is an error.

use std::borrow::Cow;

use russh::keys::ssh_key::Algorithm;
use russh::{Preferred, cipher, compression, kex, mac};

use crate::config::Settings;
use crate::config::pattern;

/// Pseudo-algorithms the client must keep offering whatever the user's
/// KexAlgorithms says (extension negotiation, strict key exchange).
const KEX_EXTENSIONS: [kex::Name; 2] = [
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// Ciphers in rscp's order: AES-GCM first where the CPU has AES
/// instructions (about 1.5x chacha20's speed there), chacha20 first
/// elsewhere. Both are secure.
fn default_ciphers() -> Vec<cipher::Name> {
    let gcm = [cipher::AES_128_GCM, cipher::AES_256_GCM];
    let rest = [
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
    ];
    let mut list = Vec::new();
    if has_aes_instructions() {
        list.extend(gcm);
        list.push(cipher::CHACHA20_POLY1305);
    } else {
        list.push(cipher::CHACHA20_POLY1305);
        list.extend(gcm);
    }
    list.extend(rest);
    list
}

fn has_aes_instructions() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Applies an ssh list spec to `defaults`; `all` are the names that exist.
fn apply_spec<T: Clone + PartialEq>(
    spec: Option<&str>,
    defaults: Vec<T>,
    all: &[T],
    name: impl Fn(&T) -> String,
    what: &str,
) -> Result<Vec<T>, String> {
    let Some(spec) = spec else {
        return Ok(defaults);
    };
    let find = |patterns: &str| -> Vec<T> {
        all.iter()
            .filter(|a| patterns.split(',').any(|p| pattern::matches(&name(a), p)))
            .cloned()
            .collect()
    };
    let list = if let Some(rest) = spec.strip_prefix('+') {
        let mut list = defaults;
        list.extend(
            find(rest)
                .into_iter()
                .filter(|a| !list.contains(a))
                .collect::<Vec<_>>(),
        );
        list
    } else if let Some(rest) = spec.strip_prefix('-') {
        let removed = find(rest);
        defaults
            .into_iter()
            .filter(|a| !removed.contains(a))
            .collect()
    } else if let Some(rest) = spec.strip_prefix('^') {
        let mut list = find(rest);
        list.extend(
            defaults
                .into_iter()
                .filter(|a| !list.contains(a))
                .collect::<Vec<_>>(),
        );
        list
    } else {
        // Explicit lists keep their own order.
        spec.split(',')
            .flat_map(|n| {
                all.iter()
                    .filter(|a| name(a) == n)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    if list.is_empty() {
        return Err(format!("no supported {what} in '{spec}'"));
    }
    Ok(list)
}

/// The preferences for one connection. `known` are the algorithms of the
/// host keys already known for this host; `certificates` whether an
/// authority is trusted for it (then certificates are asked for first).
pub fn preferred(
    settings: &Settings,
    known: &[Algorithm],
    certificates: bool,
) -> Result<Preferred, String> {
    let all_ciphers: Vec<cipher::Name> = [
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
        cipher::AES_256_CBC,
        cipher::AES_192_CBC,
        cipher::AES_128_CBC,
    ]
    .to_vec();
    let ciphers = apply_spec(
        settings.ciphers.as_deref(),
        default_ciphers(),
        &all_ciphers,
        |n| n.as_ref().to_owned(),
        "ciphers",
    )?;

    let default = Preferred::DEFAULT;
    let real_kex = |list: &[kex::Name]| -> Vec<kex::Name> {
        list.iter()
            // Client and server extension markers alike.
            .filter(|k| {
                !k.as_ref().starts_with("ext-info") && !k.as_ref().starts_with("kex-strict")
            })
            .cloned()
            .collect()
    };
    let all_kex: Vec<kex::Name> = [
        kex::MLKEM768X25519_SHA256,
        kex::CURVE25519,
        kex::CURVE25519_PRE_RFC_8731,
        kex::ECDH_SHA2_NISTP256,
        kex::ECDH_SHA2_NISTP384,
        kex::ECDH_SHA2_NISTP521,
        kex::DH_GEX_SHA256,
        kex::DH_G18_SHA512,
        kex::DH_G17_SHA512,
        kex::DH_G16_SHA512,
        kex::DH_G15_SHA512,
        kex::DH_G14_SHA256,
        kex::DH_G14_SHA1,
        kex::DH_GEX_SHA1,
        kex::DH_G1_SHA1,
    ]
    .to_vec();
    let mut kex = apply_spec(
        settings.kex_algorithms.as_deref(),
        real_kex(&default.kex),
        &all_kex,
        |n| n.as_ref().to_owned(),
        "key exchange algorithms",
    )?;
    kex.extend(KEX_EXTENSIONS);

    let all_macs: Vec<mac::Name> = [
        mac::HMAC_SHA512_ETM,
        mac::HMAC_SHA256_ETM,
        mac::HMAC_SHA512,
        mac::HMAC_SHA256,
        mac::HMAC_SHA1_ETM,
        mac::HMAC_SHA1,
    ]
    .to_vec();
    let macs = apply_spec(
        settings.macs.as_deref(),
        default.mac.to_vec(),
        &all_macs,
        |n| n.as_ref().to_owned(),
        "MACs",
    )?;

    let all_keys: Vec<Algorithm> = default.key.to_vec();
    let mut keys = apply_spec(
        settings.host_key_algorithms.as_deref(),
        default.key.to_vec(),
        &all_keys,
        |a| a.as_str().to_owned(),
        "host key algorithms",
    )?;
    // Known key types first, as ssh orders them, so that the server shows
    // a key that can be checked against what is known.
    let same_type = |a: &Algorithm, b: &Algorithm| match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    };
    keys.sort_by_key(|a| !known.iter().any(|k| same_type(a, k)));

    let compression: Vec<compression::Name> = if settings.compression {
        ["zlib@openssh.com", "zlib", "none"]
            .iter()
            .filter_map(|n| compression::Name::try_from(*n).ok())
            .collect()
    } else {
        vec![compression::NONE]
    };

    Ok(Preferred {
        kex: Cow::Owned(kex),
        key: Cow::Owned(keys.clone()),
        host_key_certificates: if certificates {
            Cow::Owned(keys)
        } else {
            Cow::Borrowed(&[])
        },
        cipher: Cow::Owned(ciphers),
        mac: Cow::Owned(macs),
        compression: Cow::Owned(compression),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[cipher::Name]) -> Vec<&str> {
        list.iter().map(|n| n.as_ref()).collect()
    }

    fn settings() -> Settings {
        crate::config::resolve(&crate::config::Request {
            host: "h".into(),
            files: crate::config::ConfigFiles::None,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn cipher_specs() {
        let mut s = settings();
        s.ciphers = Some("aes128-ctr,aes256-gcm@openssh.com".into());
        let p = preferred(&s, &[], false).unwrap();
        assert_eq!(names(&p.cipher), ["aes128-ctr", "aes256-gcm@openssh.com"]);
        s.ciphers = Some("-aes*-ctr".into());
        let p = preferred(&s, &[], false).unwrap();
        assert!(!names(&p.cipher).iter().any(|n| n.ends_with("-ctr")));
        s.ciphers = Some("^aes128-cbc".into());
        assert_eq!(
            names(&preferred(&s, &[], false).unwrap().cipher)[0],
            "aes128-cbc"
        );
        s.ciphers = Some("+aes128-cbc".into());
        assert_eq!(
            names(&preferred(&s, &[], false).unwrap().cipher).last(),
            Some(&"aes128-cbc")
        );
        s.ciphers = Some("rot13".into());
        assert!(preferred(&s, &[], false).is_err());
    }

    #[test]
    fn known_host_key_types_come_first() {
        let p = preferred(&settings(), &[Algorithm::Rsa { hash: None }], false).unwrap();
        assert!(matches!(p.key[0], Algorithm::Rsa { .. }), "{:?}", p.key);
        let p = preferred(&settings(), &[], false).unwrap();
        assert_eq!(p.key[0], Algorithm::Ed25519);
    }

    #[test]
    fn kex_extensions_survive_a_user_list() {
        let mut s = settings();
        s.kex_algorithms = Some("curve25519-sha256".into());
        let p = preferred(&s, &[], false).unwrap();
        let kex: Vec<&str> = p.kex.iter().map(|k| k.as_ref()).collect();
        assert_eq!(
            kex,
            [
                "curve25519-sha256",
                "ext-info-c",
                "kex-strict-c-v00@openssh.com"
            ]
        );
    }
}
