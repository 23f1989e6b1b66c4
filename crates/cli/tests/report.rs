//! `harbinger report` in a real browser: a small synthetic fleet is evaluated, its output
//! directory turned into `report.html`, and headless Chromium renders it (a screenshot that
//! must not be blank) and runs its inline script (the dumped DOM must carry the marker the
//! script sets, and Chromium must log no console message: no script error).
//!
//! Needs `chromium` (Debian package of that name; `scripts/test.sh` installs it), or
//! `HARBINGER_CHROMIUM_BIN` naming a Chromium or Chrome binary.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Chromium gets this long per run before it is killed and the test fails.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    if let Ok(p) = std::env::var("HARBINGER_CHROMIUM_BIN") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("chromium not found: apt-get install chromium (scripts/test.sh installs it), or set HARBINGER_CHROMIUM_BIN");
}

/// Runs headless Chromium on `url` with `args` in its own process group, killed (the whole
/// group) after [`CHROMIUM_TIMEOUT`]; returns (success, stdout, stderr).
fn run_chromium(profile: &Path, args: &[String], url: &str) -> (bool, String, String) {
    use std::os::unix::process::CommandExt;
    let logs = profile.with_extension("logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let (out_path, err_path) = (logs.join("stdout"), logs.join("stderr"));
    let mut child = Command::new(chromium())
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let pgid = child.id();
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait chromium") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Chromium's helpers (zygote, renderer, GPU) share its process group: end them all.
    let _k = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
    let _w = child.wait();
    let mut stdout = String::new();
    let mut stderr = String::new();
    std::fs::File::open(&out_path).expect("stdout").read_to_string(&mut stdout).expect("read stdout");
    std::fs::File::open(&err_path).expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    let Some(status) = status else {
        panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?} (killed):\n{stderr}");
    };
    (status.success(), stdout, stderr)
}

/// A decoded 8-bit PNG: width, height, channels, pixels.
struct Image {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

/// Decodes an 8-bit, non-interlaced grey, RGB, grey+alpha or RGBA PNG (what Chromium writes).
fn decode_png(bytes: &[u8]) -> Image {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut pos = 8;
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("len")) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let body = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().expect("w")) as usize;
                height = u32::from_be_bytes(body[4..8].try_into().expect("h")) as usize;
                assert_eq!(body[8], 8, "bit depth 8 expected");
                channels = match body[9] {
                    0 => 1,
                    2 => 3,
                    4 => 2,
                    6 => 4,
                    t => panic!("PNG colour type {t} not handled"),
                };
                assert_eq!(body[12], 0, "non-interlaced PNG expected");
            }
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).expect("inflate IDAT");
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "decoded size");
    let mut data = vec![0u8; height * stride];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for i in 0..stride {
            let a = if i >= channels { data[y * stride + i - channels] } else { 0 };
            let b = if y > 0 { data[(y - 1) * stride + i] } else { 0 };
            let c = if y > 0 && i >= channels { data[(y - 1) * stride + i - channels] } else { 0 };
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            data[y * stride + i] = line[i].wrapping_add(pred);
        }
    }
    Image { width, height, channels, data }
}

#[test]
fn report_renders_in_headless_chromium() {
    let browser = chromium();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let (ds, out) = (tmp.path().join("ds"), tmp.path().join("out"));

    // 6 hosts over 4 days (seed 3): 3 failures, alerts and shadow decisions.
    let (code, _, err) = common::run(&["synth", "--out", &s(&ds), "--hosts", "6", "--days", "4", "--step", "1m", "--seed", "3"]);
    assert_eq!(code, 0, "{err}");
    let model = root.join("models/default");
    let (code, _, err) =
        common::run(&["--log-level", "warn", "eval", "--data", &s(&ds), "--model", &s(&model), "--out", &s(&out), "--trace-every", "10m"]);
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = common::run(&["report", "--out", &s(&out), "--data", &s(&ds)]);
    assert_eq!(code, 0, "{err}");
    let report = out.join("report.html");
    assert_eq!(stdout.trim(), format!("wrote {}", report.display()));
    let html = std::fs::read_to_string(&report).expect("report.html");

    // Deterministic: a second run rewrites the same bytes.
    let (code, _, err) = common::run(&["report", "--out", &s(&out), "--data", &s(&ds)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&report).expect("report.html"), html, "same input, same bytes");

    // Self-contained: nothing fetched from anywhere.
    for needle in ["http://", "https://", "<link", "src="] {
        let hits: Vec<&str> = html.lines().filter(|l| l.contains(needle) && !l.contains("http://www.w3.org/2000/svg")).collect();
        assert!(hits.is_empty(), "report.html refers to {needle}: {hits:?}");
    }
    for part in [
        "id=\"summary\"",
        "class=\"failure\"",
        "class=\"alert\"",
        "class=\"decision\"",
        "id=\"lead-histogram\"",
        "id=\"kinds\"",
        "id=\"decisions\"",
        "id=\"ranking\"",
    ] {
        assert!(html.contains(part), "report.html lacks {part}");
    }

    let started = Instant::now();
    let url = format!("file://{}", report.canonicalize().expect("canonical path").display());
    // 1. The DOM after load: the inline script ran to its end and the SVG plots are there.
    let (ok, dom, stderr) = run_chromium(&tmp.path().join("profile-dom"), &["--dump-dom".to_string()], &url);
    assert!(ok, "chromium --dump-dom failed:\n{stderr}");
    assert!(dom.contains("data-ready=\"1\""), "the inline script did not finish (a script error?):\n{stderr}");
    let svgs = dom.matches("<svg").count();
    assert!(svgs >= 3, "{svgs} <svg> elements in the DOM");
    assert!(dom.contains(&format!("data-svgs=\"{svgs}\"")), "the script counted the SVGs the DOM holds");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "the page logged to the console: {console:#?}");

    // 2. A screenshot that is not blank.
    let shot = tmp.path().join("shot.png");
    let (ok, _, stderr) = run_chromium(
        &tmp.path().join("profile-shot"),
        &[format!("--screenshot={}", shot.display()), "--window-size=1280,2000".to_string(), "--hide-scrollbars".to_string()],
        &url,
    );
    assert!(ok, "chromium --screenshot failed:\n{stderr}");
    let img = decode_png(&std::fs::read(&shot).expect("screenshot written"));
    assert_eq!((img.width, img.height), (1280, 2000));
    let px = img.width * img.height;
    let mut hist = std::collections::BTreeSet::new();
    let (mut sum, mut sum2, mut non_white) = (0f64, 0f64, 0usize);
    for p in img.data.chunks_exact(img.channels) {
        let luma =
            if img.channels >= 3 { 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]) } else { f64::from(p[0]) };
        sum += luma;
        sum2 += luma * luma;
        if luma < 240.0 {
            non_white += 1;
        }
        hist.insert(p[..img.channels.min(3)].to_vec());
    }
    let mean = sum / px as f64;
    let var = sum2 / px as f64 - mean * mean;
    assert!(var > 100.0, "screenshot looks blank: luma variance {var:.1}");
    assert!(non_white * 100 > px, "screenshot looks blank: {non_white} of {px} pixels not white");
    assert!(hist.len() > 50, "screenshot has only {} colours", hist.len());
    eprintln!("chromium ({}): two runs in {:.1}s", browser.display(), started.elapsed().as_secs_f64());
}

/// The console check above is not vacuous: a page whose script fails is caught by it.
#[test]
fn chromium_reports_script_errors_on_stderr() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let page = tmp.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>throw new Error('report-test-failure');document.body.dataset.ready='1';</script></body></html>",
    )
    .expect("write page");
    let (ok, dom, stderr) = run_chromium(&tmp.path().join("profile"), &["--dump-dom".to_string()], &format!("file://{}", page.display()));
    assert!(ok, "chromium failed:\n{stderr}");
    assert!(!dom.contains("data-ready=\"1\""), "{dom}");
    assert!(stderr.lines().any(|l| l.contains(":CONSOLE") && l.contains("Uncaught Error: report-test-failure")), "{stderr}");
}
