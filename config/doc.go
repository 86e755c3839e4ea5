// Package config loads Chatbox's configuration and owns its defaults, its
// validation and the dev-mode secrets.
//
// [Load] builds a [Config] in this order:
//
//  1. defaults for every scalar key;
//  2. the TOML file, if any, decoded strictly: an unknown key or table is an
//     error that names it and its line;
//  3. environment overrides CHATBOX_<SECTION>_<KEY> (upper case) for every
//     scalar and list key of [server], [auth], [storage] and [llm], e.g.
//     CHATBOX_STORAGE_MONGO_URI or CHATBOX_SERVER_ALLOWED_ORIGINS="a,b".
//     Lists are comma-separated, durations are Go durations ("30s"), ints
//     are decimal. An empty variable counts as unset. [[llm.models]] cannot
//     be overridden from the environment;
//  4. derived defaults: allowed_origins from listen, the demo model when no
//     model is configured, a model's name from its id, api_key_env from its
//     provider;
//  5. [Config.Validate], which reports every problem at once, each naming
//     the key ("server.mode: must be ...").
//
// Because defaults are applied before the file, an explicit zero stays zero:
// max_retries = 0 disables retries and demo_delay = "0s" makes the demo
// provider instant. Empty lists and empty strings, though, mean "default".
//
// This package owns every default of the program, including the [Tuning]
// values that are not keys. The components (actors, transport, providers,
// notify) take resolved values, in which zero means zero, and return an
// error naming the field where a zero is invalid; cmd/chatbox copies the
// values across.
//
// After Load the caller runs [Config.PrepareSecrets]: in dev mode it creates
// (once) and then reuses a JWT secret and an encryption key under data_dir;
// in production it refuses missing or placeholder secrets instead.
//
// chatbox.example.toml in this directory is the complete key reference, with
// every default; a test loads it so it stays true.
//
// Concurrency: Load, Validate and PrepareSecrets are called once at startup
// from one goroutine. After that a *Config is read-only and may be read from
// any goroutine.
package config
