//! One shape for every wait between attempts (committing an exit, storing
//! events, delivering a webhook, retrying a step, restarting a recorder,
//! reconnecting the event stream): a delay that doubles from a first value
//! up to a cap, from `backon`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays doubling from `first` up to `max`, with no limit on their number
/// (callers bound attempts with `with_max_times` where they must).
pub fn doubling(first: Duration, max: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
}

/// The delay before attempt number `n` (from 1) of [`doubling`].
pub fn nth(first: Duration, max: Duration, n: u32) -> Duration {
    doubling(first, max)
        .build()
        .nth(n.saturating_sub(1) as usize)
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        // backon computes in f32: compare to the millisecond.
        let ms = Duration::from_millis;
        let whole = |d: Duration| d.as_millis();
        let delays: Vec<u128> = doubling(ms(100), ms(500))
            .build()
            .take(5)
            .map(whole)
            .collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        assert_eq!(whole(nth(ms(100), ms(500), 1)), 100);
        assert_eq!(whole(nth(ms(100), ms(500), 3)), 400);
        assert_eq!(whole(nth(ms(100), ms(500), 30)), 500);
    }
}
