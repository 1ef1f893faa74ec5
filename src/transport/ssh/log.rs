//! ssh-style diagnostics on stderr (`debug1: ...`), by LogLevel.

use crate::config::LogLevel;

#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub level: LogLevel,
}

impl Log {
    pub fn debug1(&self, text: &str) {
        self.at(LogLevel::Debug1, text);
    }

    /// `-q` or LogLevel QUIET (or FATAL, ERROR): warnings are not shown.
    pub fn quiet(&self) -> bool {
        self.level < LogLevel::Info
    }

    fn at(&self, level: LogLevel, text: &str) {
        if self.level >= level {
            let tag = match level {
                LogLevel::Debug1 => "debug1: ",
                LogLevel::Debug2 => "debug2: ",
                _ => "debug3: ",
            };
            crate::report::debug(tag, text.as_bytes());
        }
    }
}
