//! An emulated network between the harness and an S3 server: a delaying TCP proxy
//! (`harness netem-proxy`), because this machine's kernel has no `netem` qdisc.
//!
//! The proxy listens on one address and connects every accepted connection to the
//! upstream (the S3 server). Each direction of each connection is a delay line: a
//! reader takes whatever bytes have arrived (a *chunk*, at most [`READ_CHUNK`]
//! bytes), stamps it with its release time and queues it; a writer sends each chunk
//! on at its release time. So a request's first byte reaches the server half a round
//! trip after the client sent it, and the response's first byte reaches the client
//! another half round trip after the server sent it: **`rtt` (`--delay`) is the
//! round-trip time, and every chunk in each direction is delayed by `rtt / 2`**.
//!
//! - **Jitter** adds a uniform random extra in `[0, jitter]` to each chunk's one-way
//!   delay (so the round trip lies in `[rtt, rtt + 2 · jitter]`), but never reorders
//!   bytes: a chunk is released no earlier than the one before it.
//! - **Rate** caps each direction of each connection (a token bucket of
//!   [`RATE_BURST`] bytes): a chunk released by the delay line leaves no faster than
//!   the rate allows, as on a link whose bottleneck is that rate.
//! - **A pipe with latency, not a stop-and-wait.** The reader keeps reading while
//!   earlier chunks wait, so many chunks are in flight at once. What is in flight per
//!   direction is bounded by `buffer` bytes (each chunk counts its length plus
//!   [`CHUNK_OVERHEAD`] for its bookkeeping), plus the one chunk being read; when it
//!   is full the reader stops reading and TCP's flow control pushes back on the sender, like a receive window.
//!   One connection therefore carries at most about `buffer / (rtt / 2)` bytes per
//!   second (4 MiB at 20 ms: ~420 MB/s), the rate cap aside.
//! - **Half-close** (FIN) is passed on in order, after the delayed data before it;
//!   the other direction carries on. When both directions have ended, both sockets
//!   are closed. An error on either socket (a reset, a failed write) closes both at
//!   once with a reset; nothing of the connection outlives it (its four halves are
//!   futures of one task, dropped together).
//! - `TCP_NODELAY` on both sockets: the proxy never holds bytes back for Nagle; and
//!   `TCP_QUICKACK` after every read, so it never delays its ACKs either (a server
//!   writing without `TCP_NODELAY`, as Garage does, would otherwise wait ~40 ms for
//!   them before the body of each response).
//!
//! Not emulated: packet loss, reordering, duplication, or a shared bottleneck across
//! connections (the rate is per connection and direction).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// The most bytes one read takes from a socket: one chunk of the delay line.
pub const READ_CHUNK: usize = 64 * 1024;

/// Bytes each queued chunk counts against the buffer on top of its length (the
/// queue entry, the allocation), so that a flood of tiny chunks is bounded too.
pub const CHUNK_OVERHEAD: usize = 128;

/// The token bucket's size: how many bytes may leave at once after an idle spell.
pub const RATE_BURST: u64 = 64 * 1024;

/// The default bound on bytes in flight per direction of a connection.
pub const DEFAULT_BUFFER: usize = 4 << 20;

/// The longest delay or jitter accepted: anything longer is a typo.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// How long the proxy waits for the upstream to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The backlog of the listening socket (connections not yet accepted).
const BACKLOG: u32 = 4096;

/// What the emulated network does to every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The round-trip time: each direction delays every chunk by half of it.
    pub rtt: Duration,
    /// Up to this much more, uniformly at random, per chunk and direction.
    pub jitter: Duration,
    /// The cap on each direction of each connection, in bits per second; None: no cap.
    pub rate_bits: Option<u64>,
    /// The most bytes in flight per direction of a connection.
    pub buffer: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            rtt: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bits: None,
            buffer: DEFAULT_BUFFER,
        }
    }
}

impl Profile {
    /// Checks the combination: a buffer that holds at least one whole chunk.
    pub fn check(&self) -> Result<(), String> {
        if self.buffer < READ_CHUNK + CHUNK_OVERHEAD {
            return Err(format!(
                "--buffer {} is too small: it must hold one chunk of {} bytes plus {} of bookkeeping",
                self.buffer, READ_CHUNK, CHUNK_OVERHEAD
            ));
        }
        if self.rate_bits == Some(0) {
            return Err("--rate 0 would carry nothing; leave --rate out for no cap".into());
        }
        Ok(())
    }

    /// The one-way delay of every chunk before jitter: half the round trip.
    pub fn one_way(&self) -> Duration {
        self.rtt / 2
    }
}

impl fmt::Display for Profile {
    /// `rtt=20ms,jitter=0ms,rate=none`: the form `scripts/s3-server env` records.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rtt={},jitter={},rate={}",
            show_duration(self.rtt),
            show_duration(self.jitter),
            self.rate_bits.map_or("none".to_string(), show_rate)
        )
    }
}

/// A duration as the parser reads it back: whole milliseconds as `20ms`, else µs.
pub fn show_duration(d: Duration) -> String {
    if d.as_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// A rate in bits per second as the parser reads it back (`500mbit`, `1500kbit`).
pub fn show_rate(bits: u64) -> String {
    for (unit, scale) in [
        ("gbit", 1_000_000_000),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
    ] {
        if bits % scale == 0 {
            return format!("{}{unit}", bits / scale);
        }
    }
    format!("{bits}bit")
}

/// Splits `20ms` into `(20.0, "ms")`; an error names `what` and the text.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(f64, &'a str), String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{what} {text:?}: expected a number and a unit"))?;
    if !value.is_finite() {
        return Err(format!("{what} {text:?}: not a finite number"));
    }
    Ok((value, unit.trim()))
}

/// A duration such as `20ms`, `1.5ms`, `250us`, `2s` or `0`. A number without a
/// unit (other than 0), a negative, unknown unit or one over [`MAX_DELAY`] is an
/// error naming `what` (the flag) and the text.
pub fn parse_duration(text: &str, what: &str) -> Result<Duration, String> {
    let (value, unit) = number_and_unit(text, what)?;
    let seconds_per_unit = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" => 1.0,
        "ms" | "msec" => 1e-3,
        "us" | "µs" | "usec" => 1e-6,
        "ns" => 1e-9,
        "" if value == 0.0 => 0.0,
        "" => {
            return Err(format!(
                "{what} {text:?}: give a unit (e.g. 20ms, 250us, 1s)"
            ))
        }
        _ => {
            return Err(format!(
                "{what} {text:?}: unknown unit {unit:?} (use s, ms, us or ns, e.g. 20ms)"
            ))
        }
    };
    let d = Duration::from_secs_f64(value * seconds_per_unit);
    if d > MAX_DELAY {
        return Err(format!(
            "{what} {text:?}: more than {} s is surely a mistake",
            MAX_DELAY.as_secs()
        ));
    }
    Ok(d)
}

/// A rate in bits per second such as `500mbit`, `8mbit`, `1gbit`, `100kbit` or
/// `64000bit` (decimal prefixes, as `tc` writes them); `none` means no cap. An
/// error names `what` and the text.
pub fn parse_rate(text: &str, what: &str) -> Result<Option<u64>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let (value, unit) = number_and_unit(text, what)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => {
            return Err(format!(
                "{what} {text:?}: unknown unit {unit:?} (use bit, kbit, mbit or gbit per second, e.g. 500mbit, or none)"
            ))
        }
    };
    let bits = value * scale;
    if bits < 8.0 {
        return Err(format!(
            "{what} {text:?}: at least 8bit (one byte per second); leave it out for no cap"
        ));
    }
    if bits > 1e13 {
        return Err(format!(
            "{what} {text:?}: more than 10 Tbit/s is surely a mistake"
        ));
    }
    Ok(Some(bits as u64))
}

/// A byte size such as `4MiB`, `512KiB`, `1048576`.
pub fn parse_bytes(text: &str, what: &str) -> Result<usize, String> {
    let (value, unit) = number_and_unit(text, what)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{what} {text:?}: unknown unit {unit:?} (use B, KiB, MiB or GiB, e.g. 4MiB)"
            ))
        }
    };
    let bytes = value * scale;
    if bytes > u32::MAX as f64 {
        return Err(format!("{what} {text:?}: at most 4 GiB"));
    }
    Ok(bytes as usize)
}

/// Raises the soft limit of open files to the hard limit (each proxied connection
/// holds two sockets); returns the soft limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// Counters of a running proxy.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections whose both directions have ended (normally or not).
    pub closed: AtomicU64,
    /// Connections that ended with an error (refused upstream, a reset, …).
    pub failed: AtomicU64,
    /// Bytes sent on, both directions together.
    pub bytes: AtomicU64,
}

/// Binds `listen` (with a deep backlog, `SO_REUSEADDR`) for [`serve`].
pub fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    let socket = if listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(BACKLOG)
}

/// Accepts connections on `listener` for ever and proxies each to `upstream`
/// through the emulated network `profile`. Errors of one connection end only that
/// connection (counted in `stats`, and the first few printed); running out of file
/// descriptors pauses accepting for 100 ms.
pub async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    profile: Profile,
    stats: Arc<Stats>,
) -> io::Result<()> {
    profile
        .check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut seed = seed_from_clock();
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE, ENFILE, ECONNABORTED: transient; keep serving.
                eprintln!("netem-proxy: accept failed: {e}; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Relaxed);
        seed = splitmix(seed);
        let stats = stats.clone();
        tokio::spawn(async move {
            let result = connection(client, upstream, profile, seed, &stats).await;
            stats.closed.fetch_add(1, Relaxed);
            if let Err(e) = result {
                let n = stats.failed.fetch_add(1, Relaxed);
                if n < 20 {
                    eprintln!("netem-proxy: connection from {peer}: {e}");
                } else if n == 20 {
                    eprintln!("netem-proxy: more connection errors; no longer printed");
                }
            }
        });
    }
}

/// One proxied connection: connects to `upstream`, runs both directions, and
/// closes both sockets when both have ended or either failed (with a reset).
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    profile: Profile,
    seed: u64,
    stats: &Stats,
) -> io::Result<()> {
    let mut server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = client.set_zero_linger();
            return Err(io::Error::new(
                e.kind(),
                format!("connecting to upstream {upstream}: {e}"),
            ));
        }
        Err(_) => {
            let _ = client.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connecting to upstream {upstream}: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let result = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        tokio::try_join!(
            direction(cr, sw, profile, seed, stats, "client → upstream"),
            direction(sr, cw, profile, splitmix(seed), stats, "upstream → client"),
        )
    };
    if result.is_err() {
        // A reset, not a FIN: the peer must not take a cut stream for a complete one.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
    result.map(|_| ())
}

/// What the reader hands the writer.
enum Item {
    /// Bytes to send at `release`.
    Data { release: Instant, bytes: Vec<u8> },
    /// The sender half-closed: shut down the write side at `release`.
    Eof { release: Instant },
}

/// One direction: bytes read from `from` are written to `to` one delay later, in
/// order, at most `profile.buffer` bytes in flight, paced by the rate cap.
async fn direction(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    profile: Profile,
    seed: u64,
    stats: &Stats,
    name: &str,
) -> io::Result<()> {
    let budget = Semaphore::new(profile.buffer);
    // Bounded by `budget`: every queued chunk holds at least CHUNK_OVERHEAD of it.
    let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
    let reader = async {
        let mut rng = seed;
        let mut last = Instant::now();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = from
                .read(&mut buf)
                .await
                .map_err(|e| with_context(e, name, "reading"))?;
            quickack(&from);
            let now = Instant::now();
            let mut delay = profile.one_way();
            if !profile.jitter.is_zero() {
                rng = splitmix(rng);
                let frac = (rng >> 11) as f64 / (1u64 << 53) as f64;
                delay += profile.jitter.mul_f64(frac);
            }
            // Never before the chunk ahead of it: jitter must not reorder bytes.
            last = (now + delay).max(last);
            if n == 0 {
                let _ = tx.send(Item::Eof { release: last });
                return Ok::<(), io::Error>(());
            }
            let cost = (n + CHUNK_OVERHEAD) as u32;
            budget
                .acquire_many(cost)
                .await
                .map_err(|_| io::Error::other("the buffer's semaphore was closed"))?
                .forget();
            let item = Item::Data {
                release: last,
                bytes: buf[..n].to_vec(),
            };
            if tx.send(item).is_err() {
                // The writer ended (with an error, which try_join reports).
                return Ok(());
            }
        }
    };
    let writer = async {
        let mut bucket = profile.rate_bits.map(TokenBucket::new);
        while let Some(item) = rx.recv().await {
            match item {
                Item::Data { release, bytes } => {
                    tokio::time::sleep_until(release).await;
                    if let Some(b) = &mut bucket {
                        b.take(bytes.len() as u64).await;
                    }
                    to.write_all(&bytes)
                        .await
                        .map_err(|e| with_context(e, name, "writing"))?;
                    stats.bytes.fetch_add(bytes.len() as u64, Relaxed);
                    budget.add_permits(bytes.len() + CHUNK_OVERHEAD);
                }
                Item::Eof { release } => {
                    tokio::time::sleep_until(release).await;
                    to.shutdown()
                        .await
                        .map_err(|e| with_context(e, name, "passing on the half-close"))?;
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// Acknowledges what `socket` receives at once rather than after Linux's delayed-ACK
/// timer (~40 ms). The proxy's own ACKs are not part of the emulated network (the
/// delay applies to data), and a server that writes a response's headers and body
/// without `TCP_NODELAY` (Garage) would otherwise wait for that timer before sending
/// the body (the `quickack` note in `scripts/s3-server`). Linux leaves quick-ACK
/// mode on its own, so it is set again after every read; best effort.
fn quickack(socket: &ReadHalf<'_>) {
    use std::os::fd::AsRawFd as _;
    let stream: &TcpStream = socket.as_ref();
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, a pointer to an int we own and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn with_context(e: io::Error, direction: &str, doing: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{direction}: {doing}: {e}"))
}

/// Paces one direction at `rate` bits per second, allowing bursts of [`RATE_BURST`]
/// bytes: the time at which the bucket will next be empty.
struct TokenBucket {
    /// Nanoseconds per byte.
    ns_per_byte: f64,
    /// When the bytes sent so far have drained at the rate.
    drained_at: Instant,
    burst: Duration,
}

impl TokenBucket {
    fn new(rate_bits: u64) -> Self {
        let ns_per_byte = 8e9 / rate_bits as f64;
        TokenBucket {
            ns_per_byte,
            drained_at: Instant::now(),
            burst: Duration::from_nanos((ns_per_byte * RATE_BURST as f64) as u64),
        }
    }

    /// Waits until `bytes` may leave: the bucket holds at most RATE_BURST bytes of
    /// credit (saved while idle), and a send that overdraws it waits off the debt
    /// first (so the average never exceeds the rate, whatever the timer's grain).
    async fn take(&mut self, bytes: u64) {
        let now = Instant::now();
        let earliest_credit = now.checked_sub(self.burst).unwrap_or(now);
        if self.drained_at < earliest_credit {
            self.drained_at = earliest_credit;
        }
        let cost = Duration::from_nanos((self.ns_per_byte * bytes as f64) as u64);
        // The bytes may go once the debt beyond one burst has drained.
        let start = (self.drained_at + cost).checked_sub(self.burst);
        self.drained_at += cost;
        if let Some(start) = start {
            if start > now {
                tokio::time::sleep_until(start).await;
            }
        }
    }
}

/// splitmix64: a fast, good-enough generator for jitter (no dependency needed).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_from_clock() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    splitmix(t ^ u64::from(std::process::id()))
}

/// A network profile as `scripts/s3-server env` records it in `HARNESS_S3_NET`:
/// `none`, or `proxy=127.0.0.1:3910,upstream=127.0.0.1:3900,rtt=20ms,jitter=0ms,rate=none`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySetting {
    /// Where the proxy listens (what clients connect to).
    pub listen: String,
    /// The S3 server behind it.
    pub upstream: String,
    /// The delays and the rate.
    pub profile: Profile,
}

/// The environment variable `scripts/s3-server env` sets to the network profile.
pub const NET_ENV: &str = "HARNESS_S3_NET";

/// Reads a `HARNESS_S3_NET` value: `Ok(None)` for `none` (a direct connection).
pub fn parse_setting(text: &str) -> Result<Option<ProxySetting>, String> {
    let text = text.trim();
    if text.is_empty() || text == "none" {
        return Ok(None);
    }
    let mut s = ProxySetting {
        listen: String::new(),
        upstream: String::new(),
        profile: Profile::default(),
    };
    for part in text.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{NET_ENV}={text:?}: {part:?} is not key=value"))?;
        let what = format!("{NET_ENV} {k}");
        match k.trim() {
            "proxy" => s.listen = v.trim().to_string(),
            "upstream" => s.upstream = v.trim().to_string(),
            "rtt" => s.profile.rtt = parse_duration(v, &what)?,
            "jitter" => s.profile.jitter = parse_duration(v, &what)?,
            "rate" => s.profile.rate_bits = parse_rate(v, &what)?,
            "buffer" => s.profile.buffer = parse_bytes(v, &what)?,
            _ => return Err(format!("{NET_ENV}={text:?}: unknown key {k:?}")),
        }
    }
    if s.listen.is_empty() {
        return Err(format!("{NET_ENV}={text:?}: no proxy= address"));
    }
    Ok(Some(s))
}

impl fmt::Display for ProxySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proxy={},upstream={},{},buffer={}",
            self.listen, self.upstream, self.profile, self.profile.buffer
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |t| parse_duration(t, "--delay");
        assert_eq!(d("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(d("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(d("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(d("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert!(d("20").unwrap_err().contains("give a unit"));
        assert!(d("20 parsecs").unwrap_err().contains("unknown unit"));
        assert!(d("-5ms").unwrap_err().contains("expected a number"));
        assert!(d("ms").unwrap_err().contains("expected a number"));
        assert!(d("2h").unwrap_err().contains("unknown unit"));
        assert!(d("61s").unwrap_err().contains("mistake"));
        assert!(d("").is_err());
        assert_eq!(show_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(show_duration(Duration::from_micros(1500)), "1500us");
    }

    #[test]
    fn rates() {
        let r = |t| parse_rate(t, "--rate");
        assert_eq!(r("500mbit"), Ok(Some(500_000_000)));
        assert_eq!(r("8Mbit"), Ok(Some(8_000_000)));
        assert_eq!(r("1.5gbit"), Ok(Some(1_500_000_000)));
        assert_eq!(r("none"), Ok(None));
        assert!(r("500").unwrap_err().contains("unknown unit"));
        assert!(r("500mb").unwrap_err().contains("unknown unit"));
        assert!(r("0mbit").unwrap_err().contains("at least"));
        assert_eq!(show_rate(500_000_000), "500mbit");
        assert_eq!(show_rate(1_500_000), "1500kbit");
    }

    #[test]
    fn settings_round_trip() {
        assert_eq!(parse_setting("none"), Ok(None));
        let s = parse_setting(
            "proxy=127.0.0.1:3910,upstream=127.0.0.1:3900,rtt=20ms,jitter=5ms,rate=500mbit",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.profile.rtt, Duration::from_millis(20));
        assert_eq!(s.profile.rate_bits, Some(500_000_000));
        assert_eq!(parse_setting(&s.to_string()), Ok(Some(s)));
        assert!(parse_setting("rtt=20ms").unwrap_err().contains("no proxy="));
        assert!(parse_setting("proxy=x,rtt=20").is_err());
    }
}
