//! Rate limiting, with no I/O: a token bucket, a token bucket per client
//! address in a table of bounded size, and the key a client address is
//! limited by.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The key a client address is limited by: an IPv4 address as it is, an IPv6
/// address by its /64 prefix (the rest of the address zeroed). One IPv6 host is
/// usually given a whole /64 and can pick any address in it, so limits per
/// IPv6 address would be no limits. An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`, from a dual-stack socket) counts as its IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// An address key as text for messages: `2001:db8::/64` or `192.0.2.7`.
pub fn describe_key(key: IpAddr) -> String {
    match key {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

/// Token buckets by client address (by [`address_key`]): each address may make
/// `burst` requests at once, refilled at `rate` per second. Addresses whose
/// bucket is full again are forgotten, so the table only holds recently active
/// addresses; past `max_addresses` of those, new addresses are refused until
/// some are forgotten.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_addresses: usize,
    buckets: HashMap<IpAddr, TokenBucket>,
    last_sweep: Option<Instant>,
}

/// A refused request: when the next one would be allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryAfter(pub Duration);

/// `burst` tokens at most, refilled at `rate` a second; each request takes one.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens at `now`.
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    /// Refills for the time since last asked, then takes a token, or says how
    /// long until one is there. `rate` must be above 0.
    pub fn take(&mut self, rate: f64, burst: u32, now: Instant) -> Result<(), RetryAfter> {
        self.take_n(1.0, rate, burst, now)
    }

    /// Like [`take`](Self::take), for a cost of `cost` tokens (a byte budget
    /// charges each message its length). A cost over `burst` can never be
    /// paid and is refused with [`Duration::MAX`].
    pub fn take_n(
        &mut self,
        cost: f64,
        rate: f64,
        burst: u32,
        now: Instant,
    ) -> Result<(), RetryAfter> {
        self.refill(rate, burst, now);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else if cost > f64::from(burst.max(1)) {
            Err(RetryAfter(Duration::MAX))
        } else {
            Err(RetryAfter(seconds((cost - self.tokens) / rate)))
        }
    }

    /// Whether a token is there now, without taking it.
    pub fn has_token(&mut self, rate: f64, burst: u32, now: Instant) -> Result<(), RetryAfter> {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(RetryAfter(seconds((1.0 - self.tokens) / rate)))
        }
    }

    fn refill(&mut self, rate: f64, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.at = now;
    }
}

/// Seconds as a duration, saturating: a rate so small that a refill takes
/// longer than `Duration` holds means never.
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

impl RateLimiter {
    /// `rate` requests per second per address, `burst` at once; a `rate` of 0
    /// turns the limit off.
    pub fn new(rate: f64, burst: u32, max_addresses: usize) -> Self {
        Self {
            rate: rate.max(0.0),
            burst: f64::from(burst.max(1)),
            max_addresses: max_addresses.max(1),
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Whether a limit is in force.
    pub fn is_enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes a token for `addr`, or says how long until one is free.
    pub fn check(&mut self, addr: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let (rate, burst) = (self.rate, self.burst as u32);
        self.with_bucket(addr, now, |bucket| bucket.take(rate, burst, now))
    }

    /// Whether `addr` has a token now, without taking it (for limits charged
    /// only when a request turns out to be a miss).
    pub fn peek(&mut self, addr: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let (rate, burst) = (self.rate, self.burst as u32);
        self.with_bucket(addr, now, |bucket| bucket.has_token(rate, burst, now))
    }

    fn with_bucket(
        &mut self,
        addr: IpAddr,
        now: Instant,
        f: impl FnOnce(&mut TokenBucket) -> Result<(), RetryAfter>,
    ) -> Result<(), RetryAfter> {
        if !self.is_enabled() {
            return Ok(());
        }
        self.sweep(now);
        let addr = address_key(addr);
        // `burst` came in as a u32.
        let burst = self.burst as u32;
        let full = self.buckets.len() >= self.max_addresses;
        let bucket = match self.buckets.get_mut(&addr) {
            Some(bucket) => bucket,
            None if full => {
                return Err(RetryAfter(seconds(self.burst / self.rate)));
            }
            None => self
                .buckets
                .entry(addr)
                .or_insert(TokenBucket::full(burst, now)),
        };
        f(bucket)
    }

    /// Forgets addresses whose bucket has refilled, at most once a second.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let refill_time = seconds(self.burst / self.rate);
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at) < refill_time);
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut limiter = RateLimiter::new(2.0, 3, 100);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(ip(1), t).is_ok());
        }
        let Err(RetryAfter(wait)) = limiter.check(ip(1), t) else {
            panic!("the fourth at once must be refused");
        };
        assert_eq!(wait, Duration::from_millis(500));
        // Another address is not affected.
        assert!(limiter.check(ip(2), t).is_ok());
        // Half a second later one more token has come.
        let later = t + Duration::from_millis(500);
        assert!(limiter.check(ip(1), later).is_ok());
        assert!(limiter.check(ip(1), later).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut limiter = RateLimiter::new(1.0, 2, 4);
        let t = Instant::now();
        for n in 0..4 {
            assert!(limiter.check(ip(n), t).is_ok());
        }
        // A fifth address while four are active is refused, not remembered.
        assert!(limiter.check(ip(9), t).is_err());
        assert_eq!(limiter.tracked(), 4);
        // Once their buckets refill they are forgotten and there is room again.
        let later = t + Duration::from_secs(3);
        assert!(limiter.check(ip(9), later).is_ok());
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t = Instant::now();
        let mut bucket = TokenBucket::full(2, t);
        assert!(bucket.take(10.0, 2, t).is_ok());
        assert!(bucket.take(10.0, 2, t).is_ok());
        assert_eq!(
            bucket.take(10.0, 2, t),
            Err(RetryAfter(Duration::from_millis(100)))
        );
        // A long pause refills it to the burst, not beyond.
        let later = t + Duration::from_secs(60);
        for _ in 0..2 {
            assert!(bucket.take(10.0, 2, later).is_ok());
        }
        assert!(bucket.take(10.0, 2, later).is_err());
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_64_prefix() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key(v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            v6("2001:db8:1:2::")
        );
        assert_eq!(address_key(v6("2001:db8:1:2::1")), v6("2001:db8:1:2::"));
        assert_ne!(
            address_key(v6("2001:db8:1:2::1")),
            address_key(v6("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(v6("::ffff:192.0.2.7")), v6("192.0.2.7"));
        assert_eq!(address_key(ip(9)), ip(9));
        assert_eq!(describe_key(v6("2001:db8:1:2::")), "2001:db8:1:2::/64");

        // Every address of one /64 draws from one bucket; the next /64 has its own.
        let mut limiter = RateLimiter::new(1.0, 3, 100);
        let t = Instant::now();
        for n in 1..=3u16 {
            let host = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, n, n, n, n);
            assert!(limiter.check(IpAddr::V6(host), t).is_ok());
        }
        assert!(limiter.check(v6("2001:db8:0:7:ffff::1"), t).is_err());
        assert!(limiter.check(v6("2001:db8:0:8::1"), t).is_ok());
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn a_byte_budget_charges_each_message_its_size() {
        let t = Instant::now();
        let mut bucket = TokenBucket::full(1000, t);
        assert!(bucket.take_n(600.0, 100.0, 1000, t).is_ok());
        assert_eq!(
            bucket.take_n(600.0, 100.0, 1000, t),
            Err(RetryAfter(Duration::from_secs(2)))
        );
        // Beyond the burst it could never be paid.
        assert_eq!(
            bucket.take_n(2000.0, 100.0, 1000, t),
            Err(RetryAfter(Duration::MAX))
        );
        assert!(
            bucket
                .take_n(600.0, 100.0, 1000, t + Duration::from_secs(2))
                .is_ok()
        );
    }

    #[test]
    fn peeking_takes_nothing() {
        let mut limiter = RateLimiter::new(1.0, 2, 10);
        let t = Instant::now();
        for _ in 0..5 {
            assert!(limiter.peek(ip(1), t).is_ok());
        }
        assert!(limiter.check(ip(1), t).is_ok());
        assert!(limiter.check(ip(1), t).is_ok());
        assert!(limiter.peek(ip(1), t).is_err());
    }

    #[test]
    fn a_zero_rate_is_off() {
        let mut limiter = RateLimiter::new(0.0, 1, 1);
        let t = Instant::now();
        for n in 0..100 {
            assert!(limiter.check(ip(n), t).is_ok());
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn a_rate_too_small_to_refill_refuses_without_panicking() {
        let mut limiter = RateLimiter::new(1e-300, 1, 1);
        let t = Instant::now();
        assert!(limiter.check(ip(1), t).is_ok());
        assert_eq!(limiter.check(ip(1), t), Err(RetryAfter(Duration::MAX)));
        // A second address finds the table full.
        assert_eq!(limiter.check(ip(2), t), Err(RetryAfter(Duration::MAX)));
        let later = t + Duration::from_secs(2);
        assert!(limiter.check(ip(1), later).is_err());
    }
}
