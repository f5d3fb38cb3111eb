//! `base_url`: `qauth::http::base_url` against the WHATWG URL parser (`url`).
//!
//! Ok(out) ⇒ `Url::parse(raw)` is Ok, its serialization without trailing `/` is `out`, and its
//! scheme is https, or http with a loopback host (localhost, 127.0.0.0/8, [::1]).

use qauth::http::base_url;
use url::{Host, Url};

use super::Target;
use crate::gen;
use crate::rng::Rng;

pub struct BaseUrl;

const SCHEMES: &[&str] = &["https", "https", "http", "http", "HTTPS", "HtTp", "hTTps", "ftp", "ws", "file", "httpss", "", "https ", "h ttp"];
const SEPARATORS: &[&str] = &["://", "://", "://", "://", ":/", ":", ":///", ":\\\\", "://\t", "//"];
const HOSTS: &[&str] = &[
    "identity.qflowhub.io",
    "API.Example.COM",
    "localhost",
    "LocalHost",
    "LOCALHOST",
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "127.0.0.01",
    "127.000.0.1",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "2130706433",
    "127.0.0.1.",
    "127.255.255.255",
    "128.0.0.1",
    "[::1]",
    "[::2]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::1%25eth0]",
    "[::1",
    "::1",
    "xn--nxasmq6b.com",
    "xN--abc.com",
    "ex_ample.com",
    "a..b",
    "-a-.com",
    "a-b.c-d",
    "1.2.3",
    "1.2.3.4",
    "255.255.255.255",
    "256.0.0.1",
    "foo.0x1",
    "foo.0X",
    "foo.09",
    "foo.1e3",
    "foo.123",
    "%6cocalhost",
    "ﬁ.com",
    "例え.jp",
    "a.b.c.d.e.f",
    "",
    "h",
    "localhost.",
    "1.2.3.4.5",
    "0.0.0.0",
    "0",
    "0x0",
    "example.com.",
    "a.b-",
    "xn--",
    "x.xn--p1ai",
    "ab--cd.com",
    "a%2eb.com",
    "EXAMPLE.com",
    "e\u{0}x.com",
];
const PORTS: &[&str] = &["", "443", "80", "0443", "0080", "8080", "65535", "65536", "0", "00000", "000000", "+1", "-1", "1x", "99999", "1 ", "080"];
const PATHS: &[&str] = &[
    "",
    "/",
    "/a",
    "/v1/",
    "/a/../b",
    "/./",
    "/%2e/",
    "/%2E%2e",
    "/.%2E",
    "/%2e.",
    "/a//",
    "//",
    "/a%20b",
    "/é",
    "/a\\b",
    "/a?x=1",
    "/a#f",
    "/[x]",
    "/a;b",
    "/~user",
    "/%zz",
    "/a/b/.",
    "/...",
    "/a b",
    "/\t",
    "/@x",
    "/a:b",
    "/graphql",
    "/core/connect",
    "/%2F",
    "/.a",
    "/a.",
    "/%2e%2e%2f",
    "/A/B/",
    "/'",
    "/|",
    "/^",
];

/// Parts `base_url` accepts, combined in a plausible URL (about half the inputs), so the comparison
/// with the URL parser runs often; the other half mixes in everything else.
const GOOD_SCHEMES: &[&str] = &["https", "HTTPS", "Https", "http", "HTTP", "hTtP"];
const GOOD_HOSTS: &[&str] = &[
    "identity.qflowhub.io",
    "API.Example.COM",
    "a-b.c-d",
    "localhost",
    "LocalHost",
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.255",
    "[::1]",
    "1.2.3.4",
    "0.0.0.0",
    "x",
    "e.x1",
    "ab--cd.com",
    "-a-.com",
];
const GOOD_PORTS: &[&str] = &["", "443", "80", "0443", "0080", "8080", "65535", "0", "00000", "1", "09"];
const GOOD_PATHS: &[&str] = &[
    "/",
    "/a",
    "/v1/",
    "/graphql",
    "/core/connect",
    "/a%20b",
    "/%2F",
    "/.a",
    "/a.",
    "/...",
    "/a;b",
    "/~user",
    "/@x",
    "/a:b",
    "/[x]",
    "/%zz",
    "/A/B/",
    "/'",
    "//",
    "/é",
];

fn host(r: &mut Rng) -> String {
    if r.one_in(3) {
        let mut h = String::new();
        for i in 0..r.range(1, 4) {
            if i > 0 {
                h.push('.');
            }
            let numeric = r.one_in(6);
            for _ in 0..r.range(1, 8) {
                h.push(if numeric { char::from(b'0' + r.below(10) as u8) } else { r.pick(&['a', 'B', 'z', '0', '7', '-', 'x', 'N']) });
            }
        }
        if r.one_in(40) {
            h.push_str(&"a".repeat(64));
        }
        h
    } else {
        r.pick(HOSTS).to_string()
    }
}

impl Target for BaseUrl {
    const NAME: &'static str = "base_url";
    type Input = String;

    fn generate(&self, r: &mut Rng) -> String {
        if r.coin() {
            let mut u = String::from(r.pick(GOOD_SCHEMES));
            u.push_str("://");
            u.push_str(r.pick(GOOD_HOSTS));
            if r.coin() {
                u.push(':');
                u.push_str(r.pick(GOOD_PORTS));
            }
            for _ in 0..r.len(2, 5) {
                u.push_str(r.pick(GOOD_PATHS));
            }
            if r.one_in(5) {
                u = gen::mutate(r, &u, &["%2e", ":443", ":80", "/", "..", "127.", "0x", "."]);
            }
            return u;
        }
        let mut u = String::from(r.pick(SCHEMES));
        u.push_str(r.pick(SEPARATORS));
        if r.one_in(10) {
            u.push_str(r.pick(&["u:p@", "@", "user@", ":@", "u@h:1@"]));
        }
        u.push_str(&host(r));
        if r.coin() {
            u.push(':');
            u.push_str(r.pick(PORTS));
        }
        for _ in 0..r.len(2, 5) {
            u.push_str(r.pick(PATHS));
        }
        if r.one_in(5) {
            u.push_str(r.pick(&["/", "//", "///"]));
        }
        if r.one_in(3) {
            u = gen::mutate(r, &u, &["%2e", "%2E", ":443", ":80", "@", "..", "/./", "/../", "127.", "[::1]", "localhost", "0x", ".", "%"]);
        }
        u
    }

    fn check(&self, raw: &String) -> Result<(), String> {
        let Ok(out) = base_url("x", raw) else { return Ok(()) };
        let u = Url::parse(raw).map_err(|e| format!("accepted what the URL parser refuses: {out:?} ({e})"))?;
        let ser = u.as_str().trim_end_matches('/');
        if ser != out {
            return Err(format!("differs from the URL parser's serialization: ours {out:?}, url {:?}", u.as_str()));
        }
        let loopback = match u.host() {
            Some(Host::Domain(d)) => d == "localhost",
            Some(Host::Ipv4(a)) => a.octets()[0] == 127,
            Some(Host::Ipv6(a)) => a == std::net::Ipv6Addr::LOCALHOST,
            None => false,
        };
        match u.scheme() {
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            s => Err(format!("accepted neither https nor loopback http: scheme {s:?}, host {:?}", u.host_str())),
        }
    }
}
