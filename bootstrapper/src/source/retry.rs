//! When a download is tried again, and when an attempt is given up.
//!
//! The backoff between attempts (doubled per failure, at least what the server's
//! `Retry-After` asks, never more than 8 s), which statuses are worth another try,
//! which redirects are followed, and the minimum-throughput rule: an attempt that
//! delivers fewer than `PEFT_MIN_RATE_BYTES` in `PEFT_MIN_RATE_SECS` is abandoned, so
//! a server that drips bytes cannot hold the cache lock for ever; and the total
//! deadline of one download ([`Deadline`]), so that one dripping just above that
//! minimum cannot either.

use std::ops::Deref;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;
use url::Url;

use crate::env;

/// The longest wait between two attempts, whatever the backoff or the server says.
const MAX_DELAY: Duration = Duration::from_secs(8);

/// Redirects followed for one request; a longer chain is refused.
pub(super) const MAX_REDIRECTS: usize = 5;

/// The wait before the next attempt after `failures` consecutive failures.
pub(super) fn delay(base: Duration, failures: u32, retry_after: Option<Duration>) -> Duration {
    base.saturating_mul(1 << failures.min(6))
        .max(retry_after.unwrap_or_default())
        .min(MAX_DELAY)
}

/// Whether a status may go away if asked again (timeouts, rate limits, 5xx).
pub(super) fn retryable(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS
}

/// What a failed status says; a redirect that reached us is one that was not followed.
pub(super) fn status_error(resp: &reqwest::Response) -> String {
    let status = resp.status();
    let location = resp.headers().get(reqwest::header::LOCATION);
    match location.and_then(|l| l.to_str().ok()) {
        Some(to) if status.is_redirection() => format!(
            "HTTP {status}: the redirect to {to} was not followed (only http and https \
             are followed, at most {MAX_REDIRECTS} hops, never from https to http)"
        ),
        _ => format!("HTTP {status}"),
    }
}

/// The delay a `Retry-After: <seconds>` header asks for (the date form is ignored).
pub(super) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The redirect policy: at most [`MAX_REDIRECTS`] hops, no loop, http(s) only, and
/// never from https to http.
pub(super) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        match refuse_redirect(attempt.url(), attempt.previous()) {
            Some(why) => attempt.error(why),
            None => attempt.follow(),
        }
    })
}

/// Why a redirect to `next` is not followed after `previous` (the first one is the
/// URL asked for), or `None` when it is followed.
fn refuse_redirect(next: &Url, previous: &[Url]) -> Option<String> {
    if !matches!(next.scheme(), "http" | "https") {
        Some(format!(
            "refused a redirect to {next}: only http and https are followed"
        ))
    } else if next.scheme() == "http" && previous.iter().any(|p| p.scheme() == "https") {
        Some(format!(
            "refused a redirect from https to {next}: it would drop TLS"
        ))
    } else if previous.contains(next) {
        Some(format!("refused a redirect loop back to {next}"))
    } else if previous.len() > MAX_REDIRECTS {
        Some(format!("refused more than {MAX_REDIRECTS} redirects"))
    } else {
        None
    }
}

/// The total deadline of one download, every attempt, backoff and mirror together:
/// `PEFT_DEADLINE_SECS` plus the blob's size at `PEFT_DEADLINE_RATE_BYTES` a second.
///
/// The defaults (600 s, 32 KiB/s) let a 3 GB archive take 26 hours and a 100 MB one
/// an hour: only a link slower than about 260 kbit/s on average, retries included,
/// reaches them. Bytes received are kept, so even such a link finishes over runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    base: Duration,
    rate: u64,
}

impl Deadline {
    pub(super) fn from_env() -> Deadline {
        Deadline {
            base: Duration::from_secs(env::number(env::DEADLINE_SECS, 600)),
            rate: env::number(env::DEADLINE_RATE_BYTES, 32 << 10),
        }
    }

    /// How long a download of `size` bytes may take in all.
    pub(super) fn budget(self, size: u64) -> Duration {
        let extra = size.checked_div(self.rate).unwrap_or(0);
        self.base.saturating_add(Duration::from_secs(extra))
    }

    /// Why a download of `size` bytes was stopped.
    pub(super) fn passed(self, size: u64) -> String {
        let why = match self.rate {
            0 => format!("{}={}", env::DEADLINE_SECS, self.base.as_secs()),
            r => format!(
                "{}={} plus 1 s per {}={r} bytes of its {size}",
                env::DEADLINE_SECS,
                self.base.as_secs(),
                env::DEADLINE_RATE_BYTES
            ),
        };
        format!(
            "{DEADLINE_PASSED} of {} s ({why})",
            self.budget(size).as_secs()
        )
    }
}

/// How every message about a passed deadline starts.
pub(super) const DEADLINE_PASSED: &str = "the download did not finish within its deadline";

/// The minimum-throughput rule; `min_bytes == 0` turns it off.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    min_bytes: u64,
    window: Duration,
}

impl Pace {
    /// From `PEFT_MIN_RATE_BYTES` (default 64 KiB) and `PEFT_MIN_RATE_SECS` (default 30).
    pub(super) fn from_env() -> Pace {
        Pace {
            min_bytes: env::number(env::MIN_RATE_BYTES, 64 << 10),
            window: Duration::from_secs(env::number(env::MIN_RATE_SECS, 30).max(1)),
        }
    }

    /// A meter for one attempt, starting now.
    pub(super) fn meter(self) -> Meter {
        Meter {
            pace: self,
            start: Instant::now(),
            got: 0,
        }
    }
}

/// One attempt's progress against its [`Pace`], in consecutive windows.
#[derive(Debug)]
pub(super) struct Meter {
    pace: Pace,
    start: Instant,
    got: u64,
}

/// Why an attempt's body stopped before its end.
#[derive(Debug)]
pub(super) enum Stop {
    Lost(reqwest::Error),
    Slow(String),
}

impl Meter {
    /// The next chunk of `resp`, or [`Stop::Slow`] once a whole window went by with
    /// fewer bytes than the pace asks.
    pub(super) async fn chunk(
        &mut self,
        resp: &mut reqwest::Response,
    ) -> Result<Option<impl Deref<Target = [u8]> + use<>>, Stop> {
        loop {
            self.roll()?;
            let next = if self.pace.min_bytes == 0 {
                Ok(resp.chunk().await)
            } else {
                tokio::time::timeout_at(self.start + self.pace.window, resp.chunk()).await
            };
            match next {
                Ok(Ok(Some(bytes))) => {
                    self.got += bytes.len() as u64;
                    return Ok(Some(bytes));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => return Err(Stop::Lost(e)),
                // No chunk before the window ended: judged at the top.
                Err(_) => {}
            }
        }
    }

    /// At the end of a window: too slow, or a fresh window.
    fn roll(&mut self) -> Result<(), Stop> {
        let window = self.pace.window;
        if self.pace.min_bytes == 0 || self.start.elapsed() < window {
            return Ok(());
        }
        if self.got < self.pace.min_bytes {
            return Err(Stop::Slow(format!(
                "the server sent {} bytes in {} s, below the minimum of {} bytes \
                 ({} / {})",
                self.got,
                window.as_secs(),
                self.pace.min_bytes,
                env::MIN_RATE_BYTES,
                env::MIN_RATE_SECS
            )));
        }
        self.start = Instant::now();
        self.got = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter()
            .map(|u| Url::parse(u).expect("test url"))
            .collect()
    }

    #[test]
    fn redirects_are_followed_within_the_rules() {
        let prev = urls(&["http://a.test/m"]);
        let next = |u: &str| Url::parse(u).expect("test url");
        assert_eq!(refuse_redirect(&next("http://b.test/m"), &prev), None);
        assert_eq!(refuse_redirect(&next("https://b.test/m"), &prev), None);
        let https = urls(&["https://a.test/m", "https://cdn.test/m"]);
        let down = refuse_redirect(&next("http://cdn.test/m"), &https).expect("downgrade");
        assert!(down.contains("from https"), "{down}");
        let file = refuse_redirect(&next("file:///etc/passwd"), &prev).expect("file");
        assert!(file.contains("only http and https"), "{file}");
        let looped = urls(&["http://a.test/m", "http://a.test/b"]);
        let l = refuse_redirect(&next("http://a.test/m"), &looped).expect("loop");
        assert!(l.contains("loop"), "{l}");
        let long: Vec<Url> = (0..=MAX_REDIRECTS)
            .map(|i| next(&format!("http://a.test/{i}")))
            .collect();
        let n = refuse_redirect(&next("http://a.test/last"), &long).expect("too many");
        assert!(n.contains("more than"), "{n}");
    }

    #[test]
    fn the_deadline_grows_with_the_size() {
        let d = Deadline {
            base: Duration::from_secs(600),
            rate: 32 << 10,
        };
        assert_eq!(d.budget(0), Duration::from_secs(600));
        assert_eq!(d.budget(100 << 20), Duration::from_secs(600 + 3200));
        assert!(d.budget(3_000_000_000) > Duration::from_secs(25 * 3600));
        let fixed = Deadline { rate: 0, ..d };
        assert_eq!(fixed.budget(u64::MAX), Duration::from_secs(600));
        assert!(fixed.passed(1).contains("PEFT_DEADLINE_SECS"));
    }

    #[test]
    fn the_delay_doubles_honours_retry_after_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(delay(base, 1, None), Duration::from_millis(200));
        assert_eq!(delay(base, 2, None), Duration::from_millis(400));
        assert_eq!(delay(Duration::from_millis(500), 30, None), MAX_DELAY);
        let hint = Some(Duration::from_secs(2));
        assert_eq!(delay(base, 1, hint), Duration::from_secs(2));
        assert_eq!(delay(base, 1, Some(Duration::from_secs(3600))), MAX_DELAY);
    }
}
