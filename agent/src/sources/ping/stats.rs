//! [`TargetRound`]: what one target's round counts, and the summary of its round-trip times.

/// Counts and round-trip times of one target in one round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetRound {
    /// Echo requests sent (attempted: a request the kernel refused counts, and is lost).
    pub sent: u32,
    /// Requests answered within the timeout.
    pub received: u32,
    /// Replies that came after their request's timeout (this round's or an earlier one's),
    /// received since the target's previous round was reported.
    pub late: u32,
    /// Replies to a request that was already answered (or already late), since the
    /// previous report.
    pub duplicates: u32,
    /// Round-trip times of the answered requests, in seconds.
    pub rtts: Vec<f64>,
}

impl TargetRound {
    /// The share of requests not answered in time: 0 ..= 1 (1 when nothing was sent).
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            1.0
        } else {
            1.0 - f64::from(self.received.min(self.sent)) / f64::from(self.sent)
        }
    }

    /// The summary of the round-trip times; `None` when nothing was answered.
    pub fn summary(&self) -> Option<RttSummary> {
        RttSummary::of(&self.rtts)
    }
}

/// Round-trip time statistics of a round, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttSummary {
    /// Fastest.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Slowest.
    pub max: f64,
    /// Population standard deviation (ping's `mdev` is the mean deviation instead).
    pub stddev: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
}

impl RttSummary {
    /// The summary of `samples`; `None` if there are none. Percentiles interpolate linearly
    /// between the two nearest ranks (`(n − 1) × q`, numpy's default), so with 5 samples the
    /// p50 is the middle one and the p95 lies 80% of the way from the 4th to the 5th.
    pub fn of(samples: &[f64]) -> Option<RttSummary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len() as f64;
        let avg = s.iter().sum::<f64>() / n;
        let var = s.iter().map(|x| (x - avg) * (x - avg)).sum::<f64>() / n;
        let q = |p: f64| {
            let rank = (n - 1.0) * p;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            s[lo] + (s[hi] - s[lo]) * (rank - lo as f64)
        };
        Some(RttSummary {
            min: s[0],
            avg,
            max: s[s.len() - 1],
            stddev: var.sqrt(),
            p50: q(0.5),
            p95: q(0.95),
        })
    }

    /// (stat label, value) pairs in a fixed order.
    pub fn stats(&self) -> [(&'static str, f64); 6] {
        [
            ("min", self.min),
            ("avg", self.avg),
            ("max", self.max),
            ("stddev", self.stddev),
            ("p50", self.p50),
            ("p95", self.p95),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn summary_of_five_samples() {
        let s = RttSummary::of(&[0.005, 0.001, 0.004, 0.002, 0.003]).unwrap();
        assert_eq!((s.min, s.max), (0.001, 0.005));
        assert!(close(s.avg, 0.003));
        assert!(close(s.stddev, 2e-6f64.sqrt()), "{s:?}");
        assert!(close(s.p50, 0.003));
        assert!(close(s.p95, 0.0048), "{s:?}");
    }

    #[test]
    fn summary_edges() {
        assert_eq!(RttSummary::of(&[]), None);
        let one = RttSummary::of(&[0.25]).unwrap();
        assert_eq!(
            (one.min, one.avg, one.max, one.stddev, one.p50, one.p95),
            (0.25, 0.25, 0.25, 0.0, 0.25, 0.25)
        );
        let two = RttSummary::of(&[1.0, 3.0]).unwrap();
        assert!(close(two.p50, 2.0) && close(two.p95, 2.9) && close(two.stddev, 1.0));
    }

    #[test]
    fn loss_ratio() {
        let mut r = TargetRound::default();
        assert_eq!(r.loss_ratio(), 1.0, "nothing sent is nothing answered");
        r.sent = 5;
        r.received = 4;
        assert!(close(r.loss_ratio(), 0.2));
        r.received = 5;
        assert_eq!(r.loss_ratio(), 0.0);
    }
}
