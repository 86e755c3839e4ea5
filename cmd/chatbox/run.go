package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/cluster"
	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/notify"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/sqlite"
	"github.com/chatbox/chatbox/transport"
	"github.com/chatbox/chatbox/web"
)

const usage = `usage:
  chatbox [serve] [-config FILE]      run the server (no config: dev mode)
  chatbox token -sub ID [-name NAME] [-admin] [-ttl 1h] [-config FILE]
                                      print a JWT signed with the configured secret
  chatbox keygen                      print a fresh base64 32-byte encryption key
  chatbox rekey [-config FILE] [-batch 500]
                                      re-encrypt stored text under the current key
  chatbox migrate [-config FILE]      create the database indexes, list them, exit
  chatbox copy -from URI|DIR -to URI|DIR [-config FILE] [-database NAME]
                                      copy every session and message between stores`

// Run is the whole program: it parses args, runs the command, and returns
// when the command is done or ctx is cancelled (a signal).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "token":
		return token(args, stdout, stderr)
	case "rekey":
		return rekey(ctx, args, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, stdout, stderr)
	case "copy":
		return copyStores(ctx, args, stdout, stderr)
	case "keygen":
		k, err := config.GenerateKey()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, k)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("chatbox "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// loadConfig reads the configuration and prepares its secrets (generated
// once in dev mode and kept in data_dir).
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		return nil, err
	}
	if err := cfg.PrepareSecrets(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	sub := fs.String("sub", "", "user id (required)")
	name := fs.String("name", "", "display name (default: the user id)")
	admin := fs.Bool("admin", false, "grant the admin role")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	path := fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sub == "" {
		fs.Usage()
		return errors.New("token: -sub is required")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	secret := cfg.JWTSecret()
	if secret == nil {
		return errors.New("token: only HS256 tokens can be signed here; auth.jwt_public_key_file is configured")
	}
	t, err := auth.Sign(secret, identity(*sub, *name, *admin), *ttl, cfg.Auth.Issuer, cfg.Auth.Audience)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, t)
	return nil
}

func identity(sub, name string, admin bool) auth.Identity {
	id := auth.Identity{UserID: sub, Name: name}
	if admin {
		id.Roles = []string{"admin"}
	}
	return id
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	if cfg.Server.Mode == config.ModeProduction {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "", "config file (none: dev mode with defaults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	set := metrics.NewSet()
	store, closeStore, err := openStore(ctx, cfg, log, set)
	if err != nil {
		return err
	}
	defer closeStore()

	catalog, err := buildCatalog(cfg.LLM, cfg.Tuning, os.Getenv, log)
	if err != nil {
		return err
	}
	pem, err := cfg.JWTPublicKeyPEM()
	if err != nil {
		return err
	}
	verifier, err := auth.NewVerifier(auth.Options{Secret: cfg.JWTSecret(), PublicKeyPEM: pem, Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience})
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}

	store = persistence.Observe(store, storeObserver(set))
	registerCatalogMetrics(set, catalog)
	var notifier actors.Notifier
	if cfg.Notify.WebhookURL != "" {
		hook, err := notify.NewWebhook(notify.Options{
			URL: cfg.Notify.WebhookURL, Timeout: cfg.Tuning.WebhookTimeout, Attempts: cfg.Tuning.WebhookAttempts,
			Backoff: cfg.Tuning.WebhookBackoff, Queue: cfg.Tuning.WebhookQueue, Logger: log,
		})
		if err != nil {
			return err
		}
		hook.Start()
		defer hook.Close()
		notifier = hook
	}
	var node *cluster.Node
	if cfg.Cluster.Enabled {
		if node, err = cluster.New(cfg.Cluster, log); err != nil {
			return err
		}
	}
	hub, err := actors.New(actors.Config{
		Store: store, Models: catalog, Logger: log, Metrics: set, Notify: notifier, Placement: placement(node),
		ContextBudget: cfg.LLM.ContextBudget, StoreTimeout: cfg.Storage.Timeout.Duration,
		SessionIdle: cfg.Tuning.SessionIdle, UserIdle: cfg.Tuning.UserIdle, OutboxLimit: cfg.Tuning.OutboxLimit,
		CheckpointEvery: cfg.Tuning.CheckpointEvery, HistoryWindow: cfg.Tuning.HistoryWindow,
		Limits: actors.Limits{
			MaxConnections: cfg.Server.MaxConnections, ConnectionsPerUser: cfg.Limits.ConnectionsPerUser,
			MessagesPerMinute: cfg.Limits.MessagesPerMinute, MessageBurst: cfg.Limits.MessageBurst,
			RepliesInFlight: cfg.Limits.RepliesInFlight, DailyTokens: int64(cfg.Limits.DailyTokens),
		},
	})
	if err != nil {
		return err
	}
	hub.Start()
	if node != nil {
		if err := hub.Join(); err != nil {
			hub.Shutdown(context.Background())
			return err
		}
	}

	tcfg := transport.Config{
		Listen: cfg.Server.Listen, PathPrefix: cfg.Server.PathPrefix, AllowedOrigins: cfg.Server.AllowedOrigins,
		CORSOrigins: cfg.Server.CORSOrigins, MaxMessageBytes: cfg.Server.MaxMessageBytes,
		IdleTimeout: cfg.Server.IdleTimeout.Duration, PingInterval: cfg.Server.PingInterval.Duration,
		WriteTimeout: cfg.Tuning.WriteTimeout, ReadyTimeout: cfg.Tuning.ReadyTimeout,
		HTTPIdleTimeout: cfg.Server.HTTPIdleTimeout.Duration, HTTPReadTimeout: cfg.Server.HTTPReadTimeout.Duration,
		MaxHeaderBytes: cfg.Server.MaxHeaderBytes, ShareRequestsPerMinute: cfg.Server.ShareRequestsPerMinute,
		Verifier: verifier, Hub: hub, Store: store, Web: web.Handler(), Logger: log, MetricSet: set,
		MaxUploadBytes: cfg.Storage.MaxUploadBytes, UploadTypes: cfg.Storage.UploadTypes,
	}
	if transcriber, err := buildTranscriber(cfg.LLM, os.Getenv); err != nil {
		hub.Shutdown(context.Background())
		return err
	} else if transcriber != nil {
		tcfg.Transcriber = transcriber
	}
	for _, r := range cfg.Desk.Replies {
		tcfg.Replies = append(tcfg.Replies, transport.CannedReply{ID: r.ID, Title: r.Title, Text: r.Text})
	}
	if node != nil {
		tcfg.Cluster = node
	}
	stopMetrics := func() {}
	if cfg.Server.MetricsListen == "" {
		tcfg.Metrics = metricsHandler(set)
	} else if stopMetrics, err = serveMetrics(cfg.Server.MetricsListen, set, stdout, log); err != nil {
		hub.Shutdown(context.Background())
		return err
	}
	defer stopMetrics()
	srv, err := transport.New(tcfg)
	if err != nil {
		hub.Shutdown(context.Background())
		return err
	}
	if err := srv.Listen(); err != nil {
		hub.Shutdown(context.Background())
		return err
	}
	base := fmt.Sprintf("http://%s%s", srv.Addr(), cfg.Server.PathPrefix)
	fmt.Fprintf(stdout, "chatbox listening on %s (mode %s)\n", base, cfg.Server.Mode)
	if cfg.Server.Mode == config.ModeDev && cfg.JWTSecret() != nil {
		printDevLinks(stdout, cfg, base)
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	return errors.Join(err, shutdown(cfg.Server.ShutdownTimeout.Duration, srv, hub, log))
}

// shutdown is the graceful sequence: readiness turns 503 and new upgrades
// are refused; replies in flight get most of the budget to finish (new ones
// are refused); then every actor stops, storing what is still streaming as
// interrupted and closing every socket with 1001; the listener, the epoll
// reader and any socket that would not drain end last.
func shutdown(budget time.Duration, srv *transport.Server, hub *actors.Hub, log *slog.Logger) error {
	log.Info("shutting down", slog.Duration("budget", budget))
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	srv.BeginShutdown()
	// Keep a fifth of the budget (at most 5s) to store and close.
	drainCtx, cancelDrain := context.WithTimeout(ctx, budget-min(budget/5, 5*time.Second))
	defer cancelDrain()
	if err := hub.Drain(drainCtx); err != nil {
		log.Warn("replies cut off by the shutdown timeout", slog.Any("err", err))
	}
	hub.CloseConnections()
	return errors.Join(srv.Shutdown(ctx), hub.Shutdown(ctx))
}

// printDevLinks prints ready-to-use links with day-long dev tokens.
func printDevLinks(w io.Writer, cfg *config.Config, base string) {
	user, err := auth.Sign(cfg.JWTSecret(), identity("dev-user", "Developer", false), 24*time.Hour, cfg.Auth.Issuer, cfg.Auth.Audience)
	if err != nil {
		return
	}
	admin, err := auth.Sign(cfg.JWTSecret(), identity("dev-admin", "Admin", true), 24*time.Hour, cfg.Auth.Issuer, cfg.Auth.Audience)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "chat:  %s/#token=%s\n", base, url.QueryEscape(user))
	fmt.Fprintf(w, "admin: %s/admin/#token=%s\n", base, url.QueryEscape(admin))
	fmt.Fprintf(w, "dev token (user dev-user): %s\n", user)
}

// openStore opens the store cfg selects: MongoDB when storage.mongo_uri is
// set, otherwise the embedded SQLite store under data_dir. Either way the
// schema and indexes are in place when it returns. The embedded store's
// group commits are measured in set when it is not nil.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, set *metrics.Set) (persistence.Store, func(), error) {
	keys, err := keyring(cfg)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Storage.MongoURI == "" {
		st, err := sqlite.Open(ctx, sqlite.Options{
			Dir: storeDir(cfg), Keyring: keys, Sync: cfg.Storage.Sync,
			Timeout: cfg.Storage.Timeout.Duration, Logger: log, OnBatch: batchObserver(set),
		})
		if errors.Is(err, sqlite.ErrOldStore) {
			return nil, nil, fmt.Errorf("storage.data_dir: %w", err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("open the embedded store: %w", err)
		}
		return st, func() { st.Close(context.Background()) }, nil
	}
	st, err := mongo.Open(ctx, mongo.Options{URI: cfg.Storage.MongoURI, Database: cfg.Storage.Database, Keyring: keys, Timeout: cfg.Storage.Timeout.Duration, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close(context.Background())
		return nil, nil, err
	}
	return st, func() { st.Close(context.Background()) }, nil
}

// keyring is storage.encryption_key with storage.previous_encryption_keys.
func keyring(cfg *config.Config) (*persistence.Keyring, error) {
	cur, prev, err := cfg.EncryptionKeys()
	if err != nil {
		return nil, err
	}
	keys, err := persistence.NewKeyring(cur, prev...)
	if err != nil {
		return nil, fmt.Errorf("storage.encryption_key: %w", err)
	}
	return keys, nil
}

// storeDir is where the embedded store keeps its database: data_dir/db,
// beside the dev-mode secrets. Chatbox v1.0 kept its FerretDB files in the
// same folder, which is how the store recognises and refuses them.
func storeDir(cfg *config.Config) string { return filepath.Join(cfg.Storage.DataDir, "db") }

// placement is node as the hub's Placement, or none on a single node (a
// nil *cluster.Node must not become a non-nil interface).
func placement(node *cluster.Node) actors.Placement {
	if node == nil {
		return nil
	}
	return node
}
