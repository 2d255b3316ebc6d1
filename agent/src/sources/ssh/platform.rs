//! Platforms are data: one [`Platform`] entry per `device_type` says what its prompts end
//! with, how paging is turned off, how enable mode is entered, what its config-mode prompts
//! and "more" prompts look like. A new platform is a new entry in [`PLATFORMS`].
//!
//! The entries follow what Netmiko 4.8 does in each driver's `session_preparation`
//! (`set_terminal_width`, `disable_paging`, `enable`, `exit_config_mode`).

/// How a platform enters privileged (enable) mode.
#[derive(Debug)]
pub struct Enable {
    /// The command (`enable`).
    pub command: &'static str,
    /// A regex that matches the device asking for the secret.
    pub password_prompt: &'static str,
    /// What the prompt ends with once enabled (`#`).
    pub enabled_terminator: char,
}

/// One platform (`device_type`).
#[derive(Debug)]
pub struct Platform {
    /// Its name in the configuration (Netmiko's and ntc-templates' `device_type`).
    pub device_type: &'static str,
    /// The characters a prompt ends with (`>`, `#`, ...).
    pub terminators: &'static [char],
    /// Sent once after login, in order: terminal width, paging off.
    pub setup: &'static [&'static str],
    /// Enable mode, where the platform has one.
    pub enable: Option<Enable>,
    /// Regexes matching a configuration-mode prompt (`\(config`).
    pub config_prompts: &'static [&'static str],
    /// The command that leaves configuration mode (`end`).
    pub config_exit: &'static str,
    /// Regexes matching a "more" prompt (the whole last line, trimmed), answered with a space.
    pub more: &'static [&'static str],
    /// Appended to the login user name (MikroTik takes terminal options there).
    pub username_suffix: &'static str,
    /// What ends a command line.
    pub newline: &'static str,
}

/// `--More--`, ` --More-- `, `---- More ----`, `-- MORE --`.
const DASH_MORE: &str = r"^-+ ?(?i:more) ?-+$";

const CISCO_ENABLE: Enable = Enable {
    command: "enable",
    password_prompt: r"(?i)password",
    enabled_terminator: '#',
};

/// Every platform.
pub static PLATFORMS: &[Platform] = &[
    Platform {
        device_type: "cisco_ios",
        terminators: &['#', '>'],
        setup: &["terminal width 511", "terminal length 0"],
        enable: Some(CISCO_ENABLE),
        config_prompts: &[r"\(config"],
        config_exit: "end",
        more: &[DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "cisco_xe",
        terminators: &['#', '>'],
        setup: &["terminal width 511", "terminal length 0"],
        enable: Some(CISCO_ENABLE),
        config_prompts: &[r"\(config"],
        config_exit: "end",
        more: &[DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "cisco_nxos",
        terminators: &['#', '>'],
        setup: &["terminal width 511", "terminal length 0"],
        enable: Some(CISCO_ENABLE),
        config_prompts: &[r"\(config"],
        config_exit: "end",
        more: &[DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "cisco_xr",
        terminators: &['#', '>'],
        setup: &["terminal width 511", "terminal length 0"],
        enable: None,
        config_prompts: &[r"\(config"],
        config_exit: "end",
        more: &[DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "cisco_asa",
        terminators: &['#', '>'],
        // Netmiko enters enable mode first: `terminal pager` needs it.
        setup: &["terminal pager 0"],
        enable: Some(CISCO_ENABLE),
        config_prompts: &[r"\(config"],
        config_exit: "end",
        more: &[r"^<-+ ?(?i:more) ?-+>$", DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "arista_eos",
        terminators: &['#', '>'],
        setup: &["terminal width 511", "terminal length 0"],
        enable: Some(CISCO_ENABLE),
        config_prompts: &[r"\(config"],
        config_exit: "end",
        more: &[DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "juniper_junos",
        terminators: &['>', '#', '%'],
        setup: &[
            "set cli screen-width 511",
            "set cli complete-on-space off",
            "set cli screen-length 0",
        ],
        enable: None,
        config_prompts: &[r"#$"],
        config_exit: "exit configuration-mode",
        more: &[r"^-+\((?i:more)( \d+%)?\)-+$"],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "huawei_vrp",
        terminators: &['>', ']'],
        setup: &["screen-length 0 temporary"],
        enable: None,
        config_prompts: &[r"^\["],
        config_exit: "return",
        more: &[DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "hp_comware",
        terminators: &['>', ']'],
        setup: &["screen-length disable"],
        enable: None,
        config_prompts: &[r"^\["],
        config_exit: "return",
        more: &[DASH_MORE],
        username_suffix: "",
        newline: "\n",
    },
    Platform {
        device_type: "mikrotik_routeros",
        terminators: &['>'],
        // c: no colours, t: no terminal detection, 511 columns, 4098 rows: no paging.
        setup: &[],
        enable: None,
        config_prompts: &[],
        config_exit: "",
        more: &[r"^-- \[Q quit\|D dump\|down\]$"],
        username_suffix: "+ct511w4098h",
        newline: "\r\n",
    },
    Platform {
        device_type: "linux",
        terminators: &['$', '#'],
        setup: &[],
        enable: Some(Enable {
            command: "sudo -s",
            password_prompt: r"(?i)password",
            enabled_terminator: '#',
        }),
        config_prompts: &[],
        config_exit: "",
        more: &[],
        username_suffix: "",
        newline: "\n",
    },
];

/// The platform called `device_type`.
pub fn find(device_type: &str) -> Option<&'static Platform> {
    PLATFORMS.iter().find(|p| p.device_type == device_type)
}

impl Platform {
    /// Whether `prompt` ends with one of the terminators.
    pub fn is_prompt(&self, line: &str) -> bool {
        line.trim_end().ends_with(self.terminators)
    }

    /// Whether `prompt` is a configuration-mode prompt.
    pub fn in_config_mode(&self, prompt: &str) -> bool {
        self.config_prompts
            .iter()
            .any(|c| regex::Regex::new(c).is_ok_and(|r| r.is_match(prompt)))
    }

    /// Whether `prompt` shows enable mode (true where the platform has none).
    pub fn is_enabled(&self, prompt: &str) -> bool {
        self.enable
            .as_ref()
            .is_none_or(|e| prompt.trim_end().ends_with(e.enabled_terminator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_regex_compiles_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for p in PLATFORMS {
            assert!(names.insert(p.device_type), "{}", p.device_type);
            for m in p.more {
                regex::Regex::new(m).unwrap();
            }
            for c in p.config_prompts {
                regex::Regex::new(c).unwrap();
            }
            if let Some(e) = &p.enable {
                regex::Regex::new(e.password_prompt).unwrap();
            }
        }
        assert_eq!(PLATFORMS.len(), 11);
    }

    #[test]
    fn more_prompts_of_each_family_match() {
        let matches = |t: &str, line: &str| {
            find(t)
                .unwrap()
                .more
                .iter()
                .any(|m| regex::Regex::new(m).unwrap().is_match(line.trim()))
        };
        assert!(matches("cisco_ios", " --More-- "));
        assert!(matches("huawei_vrp", "  ---- More ----"));
        assert!(matches("cisco_asa", "<--- More --->"));
        assert!(matches("juniper_junos", "---(more 45%)---"));
        assert!(!matches("cisco_ios", "router1#"));
        assert!(!matches("cisco_ios", "Description: more-or-less"));
    }

    #[test]
    fn modes_are_told_apart() {
        let ios = find("cisco_ios").unwrap();
        assert!(ios.in_config_mode("router1(config-if)#"));
        assert!(!ios.in_config_mode("router1#"));
        assert!(ios.is_enabled("router1#") && !ios.is_enabled("router1>"));
        let hw = find("huawei_vrp").unwrap();
        assert!(hw.in_config_mode("[~HUAWEI]") && !hw.in_config_mode("<HUAWEI>"));
        let junos = find("juniper_junos").unwrap();
        assert!(junos.is_enabled("op@mx1>") && !junos.in_config_mode("op@mx1>"));
        assert!(junos.in_config_mode("op@mx1#"));
    }
}
