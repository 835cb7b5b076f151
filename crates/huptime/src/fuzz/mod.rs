//! Bounded fuzzing inside `cargo test` (no nightly, no cargo-fuzz): every decoder that reads input
//! huptime does not control — the handover record and its hex form ([`crate::wire`]), the readiness
//! channel ([`crate::ready_channel`]), the `HUPTIME_*` variables ([`crate::config`]) and the kernel's
//! socket tables ([`crate::procnet`]) — is fed random bytes and mutated valid input for a fixed
//! time, and must never panic. Each target also checks what it accepts (round trips, bounds).
//!
//! - `HUPTIME_FUZZ_SECONDS` (default 2): how long each target runs;
//! - `HUPTIME_FUZZ_SEED`: the first case's seed (default: from the clock). Every case has its own
//!   seed (the run's seed plus its number), printed when it fails, so it can be replayed first.
//!
//! `cargo test -- --nocapture` shows each target's seed, case count and rate.

mod config;
mod procnet;
mod ready_channel;
mod wire;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Cases every target runs however short the time, so its coverage checks stay meaningful.
const MIN_CASES: u64 = 2000;

/// A small, seeded pseudo-random generator (SplitMix64): the same seed gives the same case.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`; nearby seeds give unrelated sequences.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Up to `max` random bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Values that tend to sit on a boundary of some check.
const INTERESTING: [u32; 12] = [0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fff_ffff, 0xffff_ffff];

/// Applies one to four random edits to `buf`: bit flips, boundary values (bytes and little-endian
/// u16/u32 fields), inserted, deleted or duplicated runs, truncation, and splices of `donor`.
pub fn mutate(rng: &mut Rng, buf: &mut Vec<u8>, donor: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let at = if buf.is_empty() { 0 } else { rng.below(buf.len()) };
        match rng.below(8) {
            0 if !buf.is_empty() => buf[at] ^= 1 << rng.below(8),
            1 if !buf.is_empty() => buf[at] = *rng.pick(&INTERESTING) as u8,
            2 => {
                let v = *rng.pick(&INTERESTING);
                let width = if rng.one_in(2) { 2 } else { 4 };
                let bytes = v.to_le_bytes();
                for (i, b) in bytes[..width].iter().enumerate() {
                    if let Some(slot) = buf.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            3 => {
                let extra = rng.bytes(16);
                buf.splice(at..at, extra);
            }
            4 if !buf.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(buf.len());
                buf.drain(at..end);
            }
            5 => buf.truncate(at),
            6 if !buf.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(buf.len());
                let run = buf[at..end].to_vec();
                let to = rng.below(buf.len() + 1);
                buf.splice(to..to, run);
            }
            _ if !donor.is_empty() => {
                let from = rng.below(donor.len());
                let end = (from + 1 + rng.below(64)).min(donor.len());
                let to = rng.below(buf.len() + 1);
                let over = (buf.len() - to).min(end - from);
                buf.splice(to..to + over, donor[from..end].iter().copied());
            }
            _ => buf.push(rng.next() as u8),
        }
    }
}

/// How often each kind of outcome happened (to show, and to check, what the cases reached).
#[derive(Default)]
pub struct Outcomes(BTreeMap<String, u64>);

impl Outcomes {
    /// Counts one `outcome`.
    pub fn count(&mut self, outcome: &str) {
        *self.0.entry(outcome.to_string()).or_default() += 1;
    }

    /// How often `outcome` happened.
    pub fn seen(&self, outcome: &str) -> u64 {
        self.0.get(outcome).copied().unwrap_or(0)
    }
}

/// A setting from the environment; a value `parse` refuses stops the test with a clear message.
fn setting<T>(name: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    let v = std::env::var(name).ok()?;
    Some(parse(&v).unwrap_or_else(|| panic!("can't use {name}={v:?}: not a valid value")))
}

fn parse_seed(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Rng::new(now.as_nanos() as u64 ^ u64::from(std::process::id())).next()
}

/// Runs `case` with a fresh generator per case for `HUPTIME_FUZZ_SECONDS` (at least
/// [`MIN_CASES`] cases), prints the target's seed, case count and rate, and returns the outcomes
/// the cases counted. A failing case is named with the seed that replays it.
pub fn run(target: &str, mut case: impl FnMut(&mut Rng, &mut Outcomes)) -> Outcomes {
    let seconds = setting("HUPTIME_FUZZ_SECONDS", |v| v.parse::<f64>().ok().filter(|s| (0.0..1e6).contains(s)));
    let budget = Duration::from_secs_f64(seconds.unwrap_or(2.0));
    let seed = setting("HUPTIME_FUZZ_SEED", parse_seed).unwrap_or_else(clock_seed);
    let mut outcomes = Outcomes::default();
    let start = Instant::now();
    let mut n: u64 = 0;
    while n < MIN_CASES || start.elapsed() < budget {
        let case_seed = seed.wrapping_add(n);
        let mut rng = Rng::new(case_seed);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(&mut rng, &mut outcomes))) {
            eprintln!("fuzz {target}: case {n} failed; replay it with HUPTIME_FUZZ_SEED={case_seed:#x}");
            resume_unwind(panic);
        }
        n += 1;
    }
    let took = start.elapsed().as_secs_f64();
    let counts: Vec<String> = outcomes.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "fuzz {target}: {n} cases in {took:.2} s ({:.0}/s), seed {seed:#x}; outcomes: {}",
        n as f64 / took.max(1e-9),
        counts.join(", ")
    );
    outcomes
}
