//! `-l`: a bandwidth limit on file data, in either direction.

use std::time::Duration;

use tokio::time::Instant;

/// Paces data to a rate measured from the first byte, so that the average
/// over a copy is the limit however the bytes bunch up.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    bytes_per_second: f64,
    started: Option<Instant>,
    moved: u64,
}

impl Pacer {
    pub fn new(bytes_per_second: u64) -> Pacer {
        Pacer {
            bytes_per_second: bytes_per_second.max(1) as f64,
            started: None,
            moved: 0,
        }
    }

    /// How much to move between pauses: about a tenth of a second's worth,
    /// so that the rate is smooth rather than a burst and a long sleep.
    pub fn piece(&self, most: usize) -> usize {
        ((self.bytes_per_second / 10.0) as usize)
            .clamp(1024, most.max(1024))
            .min(most)
            .max(1)
    }

    /// Counts `bytes` as moved and waits until the limit allows that much.
    pub async fn moved(&mut self, bytes: u64) {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.moved += bytes;
        let due = started + Duration::from_secs_f64(self.moved as f64 / self.bytes_per_second);
        tokio::time::sleep_until(due).await;
    }
}

/// Kbit/s (K = 1024, as scp's -l) to bytes per second.
pub fn bytes_per_second(kbit_per_second: u64) -> u64 {
    kbit_per_second.saturating_mul(1024) / 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scp_units() {
        assert_eq!(bytes_per_second(8000), 1_024_000);
        assert_eq!(bytes_per_second(800), 102_400);
    }

    #[tokio::test(start_paused = true)]
    async fn the_average_is_the_limit() {
        let mut pacer = Pacer::new(102_400);
        let started = tokio::time::Instant::now();
        let piece = pacer.piece(256 * 1024);
        assert_eq!(piece, 10_240);
        let mut left = 204_800usize;
        while left > 0 {
            let n = piece.min(left);
            pacer.moved(n as u64).await;
            left -= n;
        }
        assert_eq!(started.elapsed().as_millis(), 2000);
    }
}
