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
