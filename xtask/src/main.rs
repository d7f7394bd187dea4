//! `cargo xtask <chore>`: what people would otherwise paste from the README, as one command
//! each. `test` sets up what the tests need on a fresh machine (Debian's PostgreSQL and Chromium, Node.js, the
//! npm packages of the browser test and of the TypeScript client), says what it does, and runs
//! every test; `.ci/run` calls it.
//!
//! Plain `std`: the chores are a few commands in a row, and this crate must build in seconds
//! on a machine that has nothing else yet.

mod cluster;

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <chore> [args]

  test [ARGS]       install what the tests need if missing (Debian's PostgreSQL and Chromium, Node.js >= 20,
                    the npm packages of web/e2e, clients/typescript and load-tests/peer),
                    then `cargo test --workspace [ARGS]`, then the client's `npm test`
  fuzz [SECONDS]    build the cargo-fuzz targets and run each for SECONDS (default 60)
  bench             the criterion benchmarks, then the README's load runs (storm beside the
                    floor and the Socket.IO peer, race); installs the peer's npm packages
  cluster [NODES]   a local cluster: a private PostgreSQL and NODES engines (default 3) on
                    127.0.0.1:8081…, with the demo agents; Ctrl-C stops them all
  protocol          regenerate protocol/ from src/protocol.rs (the drift test's bless mode),
                    then clients/typescript's generated types and dist/
";

/// Where the browser test looks for Chromium unless `CHROMIUM` says otherwise.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The oldest Node.js the browser test's script, the client package and the load harness's
/// peer run on.
const NODE_MAJOR: u32 = 20;

/// The cargo-fuzz release CI pins, so that a new release cannot break a run.
const CARGO_FUZZ: &str = "0.13.2";

/// The load harness's Socket.IO peer (`switchboard-load --with-peer`), a Node program.
const PEER: &str = "load-tests/peer";

const FUZZ_TARGETS: [&str; 2] = ["frame_decode", "ingress_body"];

type Outcome = Result<(), String>;

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let chore = args.next().and_then(|a| a.into_string().ok());
    let rest: Vec<OsString> = args.collect();
    let done = match chore.as_deref() {
        Some("test") => test(&rest),
        Some("fuzz") => fuzz(&rest),
        Some("bench") => bench(),
        Some("protocol") => protocol(),
        Some("cluster") => cluster::cluster(&rest),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown chore {other:?}\n\n{USAGE}")),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("xtask: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up what the tests need, then runs every test.
///
/// The TypeScript client's tests (`npm test` in `clients/typescript`: its drift tests and its
/// run against the real engine) run here, after `cargo test --workspace` has built the engine
/// binary, rather than inside `cargo test`: so `cargo test --workspace` needs no Node.js
/// (the client is a Node project with Node's test runner, run the way its README says), and
/// the binary they drive is the one just built, named to them by `SWITCHBOARD_BIN`.
fn test(args: &[OsString]) -> Outcome {
    let browser = !skipped("SWITCHBOARD_SKIP_BROWSER", "the browser test");
    let client = !skipped("SWITCHBOARD_SKIP_CLIENT", "the TypeScript client's tests");
    ensure_postgres()?;
    if browser {
        ensure_chromium()?;
    }
    if browser || client {
        ensure_node()?;
    }
    if browser {
        ensure_npm_packages(&root().join("web/e2e"))?;
    }
    if client {
        ensure_npm_packages(&root().join(CLIENT))?;
    }
    // The load harness's peer test runs the Socket.IO peer when node is there (and says it
    // is skipped when not).
    if output(Command::new("node").arg("--version")).is_some() {
        ensure_npm_packages(&root().join(PEER))?;
    } else {
        say("node is missing: the load harness's Socket.IO peer test will be skipped");
    }
    say("running every test: cargo test --workspace");
    run(cargo().arg("test").arg("--workspace").args(args))?;
    if client {
        let profile = if args.iter().any(|a| a == "--release") {
            "release"
        } else {
            "debug"
        };
        let engine = target_dir().join(profile).join("switchboard");
        say(&format!(
            "running the TypeScript client's tests against {}: npm test --prefix {CLIENT}",
            relative(&engine)
        ));
        run(Command::new("npm")
            .args(["test", "--prefix"])
            .arg(root().join(CLIENT))
            .env("SWITCHBOARD_BIN", &engine))?;
    }
    Ok(())
}

/// The TypeScript client package (its README says how it is built and tested).
const CLIENT: &str = "clients/typescript";

/// Whether `var` is `1`, saying so: then `what` and what only it needs are left out.
fn skipped(var: &str, what: &str) -> bool {
    let skip = env::var_os(var).is_some_and(|v| v == "1");
    if skip {
        say(&format!("{var}=1: {what} skipped"));
    }
    skip
}

/// Where cargo builds: `CARGO_TARGET_DIR`, else `target/` in the workspace.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |dir| root().join(dir))
}

/// Debian's PostgreSQL server binaries: the store's tests on PostgreSQL start a private server
/// from them (`src/store/postgres/test_server.rs`), and look for them where Debian puts them.
fn ensure_postgres() -> Outcome {
    let installed = postgres_bin;
    if let Some(bin) = installed() {
        say(&format!("PostgreSQL: {}", bin.display()));
        return Ok(());
    }
    say("PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb): installing Debian's package `postgresql`");
    apt_install(&["postgresql"])?;
    installed().map(drop).ok_or_else(|| {
        "apt installed postgresql, but /usr/lib/postgresql/*/bin/initdb is still missing".into()
    })
}

/// The directory of Debian's PostgreSQL server binaries, if installed.
fn postgres_bin() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .find(|major| is_executable(&major.path().join("bin/initdb")))
        .map(|major| major.path().join("bin"))
}

/// Debian's Chromium, which the browser test drives (never a browser downloaded by npm).
fn ensure_chromium() -> Outcome {
    let path = env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    if is_executable(&path) {
        say(&format!("Chromium: {}", path.display()));
        return Ok(());
    }
    say(&format!(
        "Chromium is missing at {}: installing Debian's package `chromium`",
        path.display()
    ));
    apt_install(&["chromium"])?;
    if is_executable(&path) {
        Ok(())
    } else {
        Err(format!(
            "apt installed chromium, but {} is still missing; set CHROMIUM to its path",
            path.display()
        ))
    }
}

/// Node.js ≥ [`NODE_MAJOR`] with npm, for the browser test's script, the client's tests and
/// the load harness's peer.
fn ensure_node() -> Outcome {
    if output(Command::new("npm").arg("--version")).is_none() {
        say("npm is missing: installing Debian's packages `nodejs` and `npm`");
        apt_install(&["nodejs", "npm"])?;
    }
    let version =
        output(Command::new("node").arg("--version")).ok_or("node is missing although npm is installed")?;
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| format!("cannot read node's version from {version:?}"))?;
    if major < NODE_MAJOR {
        return Err(format!(
            "the browser test, the TypeScript client's tests and the load harness's peer need \
             Node.js >= {NODE_MAJOR}, and this machine has {}; install a newer one (e.g. from \
             NodeSource) or set SWITCHBOARD_SKIP_BROWSER=1 SWITCHBOARD_SKIP_CLIENT=1",
            version.trim()
        ));
    }
    say(&format!("Node.js: {}", version.trim()));
    Ok(())
}

/// `npm ci` in `dir` unless its `node_modules` matches its lock file already.
fn ensure_npm_packages(dir: &Path) -> Outcome {
    let lock = dir.join("package-lock.json");
    // npm writes node_modules/.package-lock.json on every install: newer than the lock file
    // means installed from it.
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (modified(&installed), modified(&lock)) {
        (Some(installed), Some(lock)) => installed >= lock,
        _ => false,
    };
    if fresh {
        say(&format!("npm packages of {}: installed", relative(dir)));
        return Ok(());
    }
    say(&format!(
        "installing the npm packages of {}: npm ci",
        relative(dir)
    ));
    run(Command::new("npm")
        .arg("ci")
        .arg("--prefix")
        .arg(dir)
        .args(["--no-audit", "--no-fund"]))
}

/// Builds the fuzz targets and runs each for `args[0]` seconds (default 60); a crash fails.
fn fuzz(args: &[OsString]) -> Outcome {
    let seconds: u32 = match args.first() {
        None => 60,
        Some(s) => s
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("fuzz takes the seconds per target, not {s:?}"))?,
    };
    if output(cargo().args(["fuzz", "--version"])).is_none() {
        say(&format!(
            "installing cargo-fuzz {CARGO_FUZZ} (one to three minutes on 2 cores)"
        ));
        run(cargo().args(["install", "cargo-fuzz", "--version", CARGO_FUZZ, "--locked"]))?;
    }
    // Without a sanitizer cargo-fuzz passes rustc only stable -C flags, so the stable
    // toolchain builds it (AddressSanitizer would need nightly; our code forbids `unsafe`).
    run(cargo().args(["fuzz", "build", "--sanitizer", "none"]))?;
    // New inputs go to a scratch corpus; the committed one (fuzz/corpus/<target>) is only
    // read. A crash leaves its input in fuzz/artifacts/<target>/ and cargo-fuzz prints how to
    // rerun it.
    let scratch = env::temp_dir().join(format!("switchboard-fuzz-{}", std::process::id()));
    for target in FUZZ_TARGETS {
        let corpus = scratch.join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        say(&format!("fuzzing {target} for {seconds} s"));
        // -verbosity=0: no line per new input (thousands), but a crash's panic and input
        // still print.
        run(cargo()
            .args(["fuzz", "run", "--sanitizer", "none", target])
            .arg(&corpus)
            .arg(format!("fuzz/corpus/{target}"))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-verbosity=0", "-print_final_stats=1"]))?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// The criterion benchmarks, then the load runs the README reports.
fn bench() -> Outcome {
    // The storm runs beside the Socket.IO peer: check for it before the long part.
    ensure_node()?;
    ensure_npm_packages(&root().join(PEER))?;
    run(cargo().args(["bench", "--bench", "core"]))?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "switchboard",
        "-p",
        "switchboard-load",
    ]))?;
    let load = root().join("target/release/switchboard-load");
    let storm = [
        "reopen-storm",
        "--spawn",
        "--with-floor",
        "--with-peer",
        "--agents",
        "5000",
        "--concurrency",
        "64",
    ];
    say(&format!("switchboard-load {}", storm.join(" ")));
    run(Command::new(&load).args(storm))?;
    // The same race in memory and durable, for their ratio.
    for durability in ["memory", "full"] {
        let race = [
            "race",
            "--spawn",
            "--customers",
            "10000",
            "--agents",
            "16",
            "--durability",
            durability,
        ];
        say(&format!("switchboard-load {}", race.join(" ")));
        run(Command::new(&load).args(race))?;
    }
    Ok(())
}

/// Regenerates `protocol/` (JSON Schemas, AsyncAPI) from `src/protocol.rs`, then the
/// TypeScript client's types and compiled module from those schemas.
fn protocol() -> Outcome {
    run(cargo()
        .args(["test", "--test", "protocol_drift"])
        .env("SWITCHBOARD_BLESS", "1"))?;
    let client = root().join(CLIENT);
    ensure_npm_packages(&client)?;
    say(&format!("regenerating {CLIENT}: npm run generate, npm run build"));
    run(Command::new("npm")
        .args(["run", "generate", "--prefix"])
        .arg(&client))?;
    run(Command::new("npm")
        .args(["run", "build", "--prefix"])
        .arg(&client))
}

/// `apt-get install` of Debian packages, as root or through sudo.
fn apt_install(packages: &[&str]) -> Outcome {
    let root = output(Command::new("id").arg("-u")).is_some_and(|id| id.trim() == "0");
    let command = |program: &str| {
        if root {
            Command::new(program)
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg(program);
            sudo
        }
    };
    if !root && output(Command::new("sudo").arg("--version")).is_none() {
        return Err(format!(
            "installing {} needs root, and there is no sudo: run `apt-get install -y {}` as root",
            packages.join(" "),
            packages.join(" ")
        ));
    }
    run(command("apt-get").args(["update", "-qq"]))?;
    run(command("env")
        .args([
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-qq",
        ])
        .args(packages))
}

fn cargo() -> Command {
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.current_dir(root());
    cargo
}

/// The workspace's root: this crate's parent.
fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// Runs `command` with inherited output; `Err` names it and how it ended.
fn run(command: &mut Command) -> Outcome {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {}: {e}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(command)))
    }
}

/// `command`'s standard output if it ran and succeeded.
fn output(command: &mut Command) -> Option<String> {
    let out = command.stderr(std::process::Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    format!("`{}`", words.join(" "))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

fn say(what: &str) {
    eprintln!("xtask: {what}");
}
