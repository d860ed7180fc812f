//! The real `braid-server` driven by real clients (the `redis` crate and
//! `redis-cli`): every command family, errors, pipelining, RESP3, AUTH,
//! transactions.

mod common;

use common::server::Braid;
use redis::{Commands, RedisResult, Value};

#[test]
fn strings_counters_and_keys() {
    let b = Braid::start(&[]);
    let mut c = b.conn();
    let _: () = c.set("k", "v").unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "v");
    assert_eq!(c.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(c.decr::<_, _, i64>("n", 2).unwrap(), 3);
    let f: f64 = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.1")
        .query(&mut c)
        .unwrap();
    assert!((f - 0.1).abs() < 1e-12);
    assert_eq!(c.append::<_, _, i64>("k", "w").unwrap(), 2);
    assert_eq!(c.strlen::<_, i64>("k").unwrap(), 2);
    let err: RedisResult<i64> = c.incr("k", 1);
    assert!(err.unwrap_err().to_string().contains("not an integer"));
    assert_eq!(c.exists::<_, i64>(&["k", "n", "nope"]).unwrap(), 2);
    assert_eq!(
        redis::cmd("TYPE").arg("k").query::<String>(&mut c).unwrap(),
        "string"
    );
    assert!(c.expire::<_, i64>("k", 100).unwrap() == 1);
    let ttl: i64 = c.ttl("k").unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert_eq!(c.del::<_, i64>(&["k", "n"]).unwrap(), 2);
    let v: Option<String> = c.get("k").unwrap();
    assert_eq!(v, None);
}

#[test]
fn every_collection_family_answers() {
    let b = Braid::start(&[]);
    let mut c = b.conn();
    assert_eq!(c.sadd::<_, _, i64>("s", &["a", "b"]).unwrap(), 2);
    assert_eq!(c.scard::<_, i64>("s").unwrap(), 2);
    assert_eq!(c.hset::<_, _, _, i64>("h", "f", "1").unwrap(), 1);
    assert_eq!(c.hincr::<_, _, _, i64>("h", "f", 2).unwrap(), 3);
    assert_eq!(c.zadd::<_, _, _, i64>("z", "m", 1.5).unwrap(), 1);
    assert_eq!(c.zscore::<_, _, f64>("z", "m").unwrap(), 1.5);
    assert_eq!(c.rpush::<_, _, i64>("l", &["x", "y"]).unwrap(), 2);
    assert_eq!(
        c.lrange::<_, Vec<String>>("l", 0, -1).unwrap(),
        vec!["x", "y"]
    );
    let wrong: RedisResult<i64> = c.sadd("l", "z");
    assert!(wrong.unwrap_err().to_string().contains("WRONGTYPE"));
}

#[test]
fn pipelining_answers_in_order() {
    let b = Braid::start(&[]);
    let mut c = b.conn();
    let mut p = redis::pipe();
    for i in 0..500 {
        p.cmd("INCR").arg("ctr").ignore();
        p.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    p.cmd("GET").arg("ctr");
    let (n,): (i64,) = p.query(&mut c).unwrap();
    assert_eq!(n, 500);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 501);
}

#[test]
fn resp3_hello_and_maps() {
    let b = Braid::start(&[]);
    let mut c = b.conn();
    let hello: Value = redis::cmd("HELLO").arg(3).query(&mut c).unwrap();
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    let _: () = c.hset("h", "a", "1").unwrap();
    let all: Value = redis::cmd("HGETALL").arg("h").query(&mut c).unwrap();
    assert!(matches!(all, Value::Map(_)), "{all:?}");
}

#[test]
fn auth_is_required_when_a_password_is_set() {
    let b = Braid::start(&["--requirepass", "s3cret"]);
    let mut c = b.conn();
    let r: RedisResult<String> = redis::cmd("GET").arg("k").query(&mut c);
    assert!(r.unwrap_err().to_string().contains("NOAUTH"));
    let r: RedisResult<String> = redis::cmd("AUTH").arg("wrong").query(&mut c);
    assert!(r.unwrap_err().to_string().contains("WRONGPASS"));
    let ok: String = redis::cmd("AUTH").arg("s3cret").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    let _: () = c.set("k", "v").unwrap();
}

#[test]
fn multi_exec_and_watch() {
    let b = Braid::start(&[]);
    let mut c = b.conn();
    let (a, n): (String, i64) = redis::pipe()
        .atomic()
        .set("a", "1")
        .incr("n", 1)
        .query(&mut c)
        .unwrap();
    assert_eq!((a.as_str(), n), ("OK", 1));
    let mut other = b.conn();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut c).unwrap();
    let _: () = other.set("w", "changed").unwrap();
    let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg("w")
        .arg("mine")
        .query(&mut c)
        .unwrap();
    let r: Value = redis::cmd("EXEC").query(&mut c).unwrap();
    assert_eq!(r, Value::Nil, "EXEC aborts when a watched key changed");
    assert_eq!(c.get::<_, String>("w").unwrap(), "changed");
}

#[test]
fn redis_cli_speaks_to_it() {
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("redis-cli not installed; .ci/run installs it");
        return;
    }
    let b = Braid::start(&[]);
    let run = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &b.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(run(&["SET", "k", "hello world"]), "OK");
    assert_eq!(run(&["GET", "k"]), "hello world");
    assert_eq!(run(&["PING"]), "PONG");
    assert!(run(&["INFO", "server"]).contains("redis_version"));
    assert!(run(&["GETT", "k"]).contains("unknown command"));
}

#[test]
fn data_survives_a_clean_restart_and_a_kill() {
    let mut b = Braid::start(&[]);
    {
        let mut c = b.conn();
        let _: () = c.set("persisted", "yes").unwrap();
        let _: () = c.sadd("set", "m").unwrap();
    }
    let status = b.terminate().expect("exits");
    assert!(status.success(), "{status}");
    b.restart();
    {
        let mut c = b.conn();
        assert_eq!(c.get::<_, String>("persisted").unwrap(), "yes");
        let _: () = c.incr("after", 1).unwrap();
    }
    b.kill9();
    b.restart();
    let mut c = b.conn();
    assert_eq!(c.get::<_, i64>("after").unwrap(), 1);
    assert!(c.sismember::<_, _, bool>("set", "m").unwrap());
}
