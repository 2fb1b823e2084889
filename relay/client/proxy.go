package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"veil/conf"
	"veil/directory"
	"veil/directory/daemonmetrics"
	"veil/directory/dirclient"
	"veil/relay/path"
	"veil/relay/socks"
)

// Proxy is `veil proxy`: a directory client, a circuit client and the
// SOCKS5 front door on one loopback port.
type Proxy struct {
	cfg    *conf.Client
	log    *slog.Logger
	dir    *dirclient.Client
	client *Client
	socks  *socks.Server
	ln     net.Listener
	// metricsLn serves /metrics when metrics_addr is set, else nil.
	metricsLn net.Listener
}

// NewProxy loads what the proxy needs and binds its SOCKS port; nothing
// runs until Run.
func NewProxy(cfg *conf.Client, log *slog.Logger) (*Proxy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seeds, err := dirclient.SeedsFromConfig(cfg.Seeds)
	if err != nil {
		return nil, err
	}
	sel, err := path.NewSelector(path.Options{DataDir: cfg.DataDir, GuardLifetime: cfg.GuardLifetime.D(),
		AllowSameSubnet: cfg.LocalTestnet, Logger: log})
	if err != nil {
		return nil, err
	}
	// The directory client fetches through the circuit client's guard, and
	// the circuit client chooses paths from the directory client's view:
	// dc is set below, before anything runs.
	var dc *dirclient.Client
	cl := New(Options{View: func() *directory.View { return dc.View() }, Paths: sel, CircuitLifetime: cfg.CircuitLifetime.D(), Logger: log})
	dc, err = dirclient.New(dirclient.Options{Seeds: seeds, CacheDir: cfg.DataDir, Logger: log, MinRefresh: cfg.ConsensusRefresh.D(),
		DirCache: cl.DirTransport()})
	if err != nil {
		return nil, err
	}
	opts := socks.DefaultOptions()
	opts.Connector, opts.Logger = cl, log
	srv, err := socks.NewServer(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.SOCKSAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy: socks_addr: %w", err)
	}
	p := &Proxy{cfg: cfg, log: log, dir: dc, client: cl, socks: srv, ln: ln}
	if cfg.MetricsAddr != "" {
		if p.metricsLn, err = daemonmetrics.Listen(cfg.MetricsAddr, cfg.MetricsPublic); err != nil {
			ln.Close()
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	return p, nil
}

// Addr returns the SOCKS address.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// MetricsAddr returns the address /metrics is served on, or nil.
func (p *Proxy) MetricsAddr() net.Addr {
	if p.metricsLn == nil {
		return nil
	}
	return p.metricsLn.Addr()
}

// metricsRegistry is the proxy's /metrics: the client's counts, which
// name no circuit, relay or destination, beside the process's.
func (p *Proxy) metricsRegistry(started time.Time) *prometheus.Registry {
	reg := daemonmetrics.NewRegistry("proxy", started)
	reg.MustRegister(p.client)
	return reg
}

// Run serves until ctx ends. It starts from the cached consensus when that
// is still valid and keeps the view fresh in the background.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := p.dir.LoadCache(); err != nil && !errors.Is(err, dirclient.ErrNoCache) {
		p.log.Info("not using the cached consensus", "err", err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		p.dir.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		p.client.Maintain(ctx, p.cfg.CircuitPool)
	}()
	var serveErr error
	go func() {
		defer wg.Done()
		serveErr = p.socks.Serve(ctx, p.ln)
		cancel()
	}()
	attrs := []any{"socks", p.ln.Addr().String()}
	if p.metricsLn != nil {
		attrs = append(attrs, "metrics", p.metricsLn.Addr().String())
		// Metrics show when and how much the proxy is used: Listen took
		// an address off loopback only with metrics_public, and Serve
		// warns of it.
		reg := p.metricsRegistry(time.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			daemonmetrics.Serve(ctx, p.metricsLn, reg, p.log)
		}()
	}
	p.log.Info("proxy running", attrs...)
	<-ctx.Done()
	wg.Wait()
	p.client.Close()
	p.dir.Close()
	return serveErr
}

// View returns the directory view in use, or nil before the first fetch.
func (p *Proxy) View() *directory.View { return p.dir.View() }
