use super::*;

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let flags = Overrides {
        workers: Some(3),
        ..Default::default()
    };
    let file: Overrides = toml::from_str("workers = 2\nqueue_depth = 4\nidle_ttl = -1").unwrap();
    let s = Settings::merge(flags, file);
    assert_eq!((s.workers, s.queue_depth, s.idle_ttl), (3, 4, -1));
    assert_eq!(s.max_batch, Settings::default().max_batch);
    assert_eq!(Config::new(s).unwrap().idle_ttl(), None);
}

#[test]
fn invalid_values_name_their_setting() {
    for (toml, name) in [
        ("max_audio_seconds = nan", "max_audio_seconds"),
        ("max_audio_seconds = -5.0", "max_audio_seconds"),
        ("inference_timeout = 0", "inference_timeout"),
        ("workers = 0", "workers"),
        ("idle_ttl = -7", "idle_ttl"),
        ("max_body_bytes = 0", "max_body_bytes"),
        ("metrics_listen = \"nowhere\"", "metrics_listen"),
        ("api_key_hashes = [\"abc\"]", "api_key_hashes"),
    ] {
        let file: Overrides = toml::from_str(toml).unwrap();
        let err = Config::new(Settings::merge(Overrides::default(), file)).unwrap_err();
        assert!(err.to_string().starts_with(name), "{toml}: {err}");
    }
    assert!(toml::from_str::<Overrides>("no_such_setting = 1").is_err());
}

#[test]
fn reload_keeps_restart_only_settings_and_says_so() {
    let old = Config::new(Settings::default()).unwrap();
    let new = Settings {
        workers: 4,
        drain: 5,
        ..Settings::default()
    };
    let (config, notes) = old.reloaded(new).unwrap();
    assert_eq!(config.settings.workers, 1);
    assert_eq!(config.settings.drain, 5);
    assert!(notes
        .iter()
        .any(|n| n == "workers changed; restart to apply it"));
    assert!(notes.iter().any(|n| n == "drain reloaded"));
}

#[test]
fn named_keys_carry_their_scopes_and_plain_keys_every_scope() {
    let file: Overrides = toml::from_str(
        r#"
        api_keys = ["plain"]
        [[keys]]
        name = "alice"
        key = "a-key"
        scopes = ["transcribe", "jobs"]
        rate_limit_per_minute = 5
        [[keys]]
        name = "ops"
        key_sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        scopes = ["admin"]
        "#,
    )
    .unwrap();
    let config = Config::new(Settings::merge(Overrides::default(), file)).unwrap();
    let alice = &config.keys[&hash_key("a-key")];
    assert_eq!(
        (alice.name.as_str(), alice.owner.as_str()),
        ("alice", "alice")
    );
    assert!(alice.may(Scope::Jobs) && !alice.may(Scope::Models) && !alice.is_admin());
    assert_eq!(alice.rate_limit_per_minute, Some(5));
    // sha256("foo"): the file need not hold the key.
    assert!(config.keys[&hash_key("foo")].may(Scope::Models));
    let plain = &config.keys[&hash_key("plain")];
    assert!(Scope::ALL.iter().all(|s| plain.may(*s)));
    // Its jobs keep the owner they had before keys had names.
    assert_eq!(plain.owner, hash_key("plain"));
    assert_eq!(plain.name, owner_name(&plain.owner));
}

#[test]
fn bad_keys_are_refused_naming_the_key() {
    for (toml, why) in [
        (
            "name = \"a\"\nscopes = [\"jobs\"]",
            "exactly one of key or key_sha256",
        ),
        ("name = \"a\"\nkey = \"k\"\nscopes = []", "no scopes"),
        (
            "name = \"a b\"\nkey = \"k\"\nscopes = [\"jobs\"]",
            "must be 1 to 64",
        ),
        (
            "name = \"a\"\nkey = \"k\"\nscopes = [\"jobs\"]\nmax_sessions = 0",
            "a limit of 0",
        ),
        (
            "name = \"a\"\nkey_sha256 = \"zz\"\nscopes = [\"jobs\"]",
            "SHA-256",
        ),
    ] {
        let file: Overrides = toml::from_str(&format!("[[keys]]\n{toml}")).unwrap();
        let err = Config::new(Settings::merge(Overrides::default(), file)).unwrap_err();
        assert!(err.to_string().contains(why), "{toml}: {err}");
        assert!(err.to_string().starts_with("keys"), "{toml}: {err}");
    }
    let twice = "[[keys]]\nname = \"a\"\nkey = \"1\"\nscopes = [\"jobs\"]\n".repeat(2);
    let file: Overrides = toml::from_str(&twice).unwrap();
    assert!(Config::new(Settings::merge(Overrides::default(), file)).is_err());
    assert!(toml::from_str::<Overrides>(
        "[[keys]]\nname = \"a\"\nkey = \"k\"\nscopes = [\"root\"]"
    )
    .is_err());
}
