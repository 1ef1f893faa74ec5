//! From operands to the steps of a run, in scp's order.

use std::ffi::OsString;

use crate::operand::{self, Operand, Remote};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// More than one source: the target must be a directory.
    pub target_must_be_directory: bool,
    pub destination: Destination,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The target is remote: local sources go up (all through one remote
    /// `scp -t`), remote sources are copied between hosts.
    Remote {
        target: Remote,
        steps: Vec<ToRemote>,
    },
    /// The target is local: remote sources come down, local ones are copied
    /// by rscp itself.
    Local {
        target: OsString,
        steps: Vec<ToLocal>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToRemote {
    /// An operand that cannot be used; the message says why.
    Invalid(String),
    Upload(OsString),
    FromRemote(Remote),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToLocal {
    Invalid(String),
    Download(Remote),
    Copy(OsString),
}

/// Plans a run from `source... target`. The error is for a target that
/// cannot be parsed, which ends the run before anything is copied.
pub fn plan(operands: &[OsString]) -> Result<Plan, String> {
    let Some((target, sources)) = operands.split_last() else {
        return Err("no target".into());
    };
    let sources = sources
        .iter()
        .map(|s| operand::parse(s).map_err(|e| e.to_string()));
    let destination = match operand::parse(target).map_err(|e| e.to_string())? {
        Operand::Remote(target) => Destination::Remote {
            target,
            steps: sources
                .map(|source| match source {
                    Err(message) => ToRemote::Invalid(message),
                    Ok(Operand::Local(path)) => ToRemote::Upload(path),
                    Ok(Operand::Remote(remote)) => ToRemote::FromRemote(remote),
                })
                .collect(),
        },
        Operand::Local(target) => Destination::Local {
            target,
            steps: sources
                .map(|source| match source {
                    Err(message) => ToLocal::Invalid(message),
                    Ok(Operand::Local(path)) => ToLocal::Copy(path),
                    Ok(Operand::Remote(remote)) => ToLocal::Download(remote),
                })
                .collect(),
        },
    };
    Ok(Plan {
        target_must_be_directory: operands.len() > 2,
        destination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn upload_steps_keep_their_order() {
        let plan = plan(&os(&["a", "h2:x", "b c@h:y", "b", "h:dir"])).unwrap();
        assert!(plan.target_must_be_directory);
        let Destination::Remote { target, steps } = plan.destination else {
            panic!("remote target expected");
        };
        assert_eq!(
            (target.host.as_str(), target.path.to_str()),
            ("h", Some("dir"))
        );
        assert_eq!(steps[0], ToRemote::Upload("a".into()));
        assert!(matches!(steps[1], ToRemote::FromRemote(ref r) if r.host == "h2"));
        assert_eq!(steps[2], ToRemote::Invalid("b c: invalid user name".into()));
        assert_eq!(steps[3], ToRemote::Upload("b".into()));
    }

    #[test]
    fn download_and_local_steps() {
        let plan = plan(&os(&["h:a", "local", "dest"])).unwrap();
        let Destination::Local { target, steps } = plan.destination else {
            panic!("local target expected");
        };
        assert_eq!(target, "dest");
        assert!(matches!(steps[0], ToLocal::Download(ref r) if r.path == "a"));
        assert_eq!(steps[1], ToLocal::Copy("local".into()));
        assert!(
            !super::plan(&os(&["h:a", "dest"]))
                .unwrap()
                .target_must_be_directory
        );
    }

    #[test]
    fn a_bad_target_ends_the_run() {
        assert_eq!(
            plan(&os(&["a", "scp://[::1]/x"])),
            Err("scp://[::1]/x: invalid uri".into())
        );
    }
}
