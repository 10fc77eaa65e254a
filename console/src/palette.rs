//! The `:` command palette: parsing and completion. No I/O.

use crate::app::View;
use crate::components::actions::ActionKind;

/// Every command, with its argument hint (completion and help).
pub const COMMANDS: &[(&str, &str)] = &[
    ("members", ""),
    ("cluster", ""),
    ("keys", "[PREFIX]"),
    ("flat", ""),
    ("tree", ""),
    ("leases", ""),
    ("actions", ""),
    ("member add", "PEER-URL [--learner] [--name NAME]"),
    ("member remove", "NAME|ID"),
    ("member promote", "NAME|ID"),
    ("move-leader", "NAME|ID"),
    ("defrag", "NAME|ID"),
    ("compact", "[REVISION]"),
    ("alarm disarm", ""),
    ("refresh", ""),
    ("help", ""),
    ("q", ""),
    ("quit", ""),
];

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// `:q`.
    Quit,
    /// Switch view.
    View(View),
    /// `:keys PREFIX`.
    Keys(String),
    /// `:flat` / `:tree`.
    Flat(bool),
    /// `:help`.
    Help,
    /// `:refresh`.
    Refresh,
    /// `:member add URL [--learner] [--name NAME]`.
    MemberAdd {
        /// Peer URL.
        url: String,
        /// As learner.
        learner: bool,
        /// Name for the printed flags.
        name: String,
    },
    /// An action on a named member.
    OnMember(ActionKind, String),
    /// An action without target.
    Action(ActionKind),
    /// `:compact [REV]`.
    Compact(Option<i64>),
}

/// Parses a palette line (without the leading `:`).
pub fn parse(line: &str) -> Result<Parsed, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let arg = |i: usize| words.get(i).map(|s| s.to_string());
    let need = |i: usize, what: &str| arg(i).ok_or_else(|| format!("{line}: missing {what}"));
    match words.as_slice() {
        [] => Err("empty command".to_string()),
        ["q" | "quit" | "q!"] => Ok(Parsed::Quit),
        ["members" | "cluster" | "1"] => Ok(Parsed::View(View::Cluster)),
        ["keys"] => Ok(Parsed::View(View::Keys)),
        ["keys", ..] => {
            // The prefix is everything after "keys " (it may contain spaces).
            let rest = line
                .trim_start()
                .strip_prefix("keys")
                .unwrap_or("")
                .trim_start();
            Ok(Parsed::Keys(rest.to_string()))
        }
        ["flat"] => Ok(Parsed::Flat(true)),
        ["tree"] => Ok(Parsed::Flat(false)),
        ["leases"] => Ok(Parsed::View(View::Leases)),
        ["actions"] => Ok(Parsed::View(View::Actions)),
        ["help"] => Ok(Parsed::Help),
        ["refresh"] => Ok(Parsed::Refresh),
        ["member", "add", ..] => {
            let url = need(2, "PEER-URL")?;
            let mut learner = false;
            let mut name = String::new();
            let mut i = 3;
            while let Some(w) = words.get(i) {
                match *w {
                    "--learner" => learner = true,
                    "--name" => {
                        i += 1;
                        name = need(i, "NAME after --name")?;
                    }
                    other => return Err(format!("member add: unknown argument {other:?}")),
                }
                i += 1;
            }
            Ok(Parsed::MemberAdd { url, learner, name })
        }
        ["member", "remove", ..] => Ok(Parsed::OnMember(ActionKind::Remove, need(2, "NAME|ID")?)),
        ["member", "promote", ..] => Ok(Parsed::OnMember(ActionKind::Promote, need(2, "NAME|ID")?)),
        ["move-leader", ..] => Ok(Parsed::OnMember(
            ActionKind::MoveLeader,
            need(1, "NAME|ID")?,
        )),
        ["defrag", ..] => Ok(Parsed::OnMember(ActionKind::Defrag, need(1, "NAME|ID")?)),
        ["compact"] => Ok(Parsed::Compact(None)),
        ["compact", rev] => rev
            .parse()
            .map(|r| Parsed::Compact(Some(r)))
            .map_err(|_| format!("compact: not a revision: {rev:?}")),
        ["alarm", "disarm"] => Ok(Parsed::Action(ActionKind::DisarmAlarms)),
        _ => Err(format!("unknown command {line:?} (Tab lists commands)")),
    }
}

/// Completions of `line`: matching commands, or member names for commands
/// that take one.
pub fn complete(line: &str, members: &[String]) -> Vec<String> {
    for cmd in [
        "member remove ",
        "member promote ",
        "move-leader ",
        "defrag ",
    ] {
        if let Some(partial) = line.strip_prefix(cmd) {
            return members
                .iter()
                .filter(|m| m.starts_with(partial))
                .map(|m| format!("{cmd}{m}"))
                .collect();
        }
    }
    COMMANDS
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| c.starts_with(line) && *c != line)
        .map(|c| {
            if COMMANDS.iter().any(|(k, hint)| *k == c && !hint.is_empty()) {
                format!("{c} ")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The longest common prefix of several completions.
pub fn common_prefix(options: &[String]) -> Option<String> {
    let first = options.first()?;
    let mut len = first.len();
    for o in &options[1..] {
        len = len.min(
            first
                .bytes()
                .zip(o.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    Some(first[..len].to_string())
}

/// The argument hint of a completed command, if any.
pub fn hint(line: &str) -> Option<&'static str> {
    let line = line.trim_end();
    COMMANDS
        .iter()
        .find(|(c, h)| *c == line && !h.is_empty())
        .map(|(_, h)| *h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("q"), Ok(Parsed::Quit));
        assert_eq!(parse("members"), Ok(Parsed::View(View::Cluster)));
        assert_eq!(
            parse("keys /registry/"),
            Ok(Parsed::Keys("/registry/".into()))
        );
        assert_eq!(
            parse("member add http://10.0.0.4:2380 --learner --name n4"),
            Ok(Parsed::MemberAdd {
                url: "http://10.0.0.4:2380".into(),
                learner: true,
                name: "n4".into()
            })
        );
        assert_eq!(
            parse("member remove n2"),
            Ok(Parsed::OnMember(ActionKind::Remove, "n2".into()))
        );
        assert_eq!(parse("compact 42"), Ok(Parsed::Compact(Some(42))));
        assert!(
            parse("member add")
                .unwrap_err()
                .contains("missing PEER-URL")
        );
        assert!(parse("frobnicate").is_err());
    }

    #[test]
    fn completes_commands_and_members() {
        assert_eq!(
            complete("mem", &[]),
            [
                "members",
                "member add ",
                "member remove ",
                "member promote "
            ]
        );
        let members = vec!["n1".to_string(), "n2".to_string(), "other".to_string()];
        assert_eq!(
            complete("member remove n", &members),
            ["member remove n1", "member remove n2"]
        );
        assert_eq!(
            common_prefix(&complete("member r", &[])),
            Some("member remove ".into())
        );
        assert_eq!(
            hint("member add"),
            Some("PEER-URL [--learner] [--name NAME]")
        );
    }
}
