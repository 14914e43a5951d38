package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Prometheus is Debian's Prometheus, scraping every controller process's
// /metrics, those started later included.
type Prometheus struct {
	h        *host
	replicas *Replicas
	// URL is where it serves, once started.
	URL  string
	proc *process
}

// Start starts a real Prometheus (Debian's package, installed by
// make tools) scraping every controller process's /metrics every interval,
// those started later included, and returns its URL. Tests scrape each
// second to see runs of seconds; the bench as a cluster would (15 s), since
// each scrape costs the controller CPU the bench reports.
func (p *Prometheus) Start(ctx context.Context, interval time.Duration) (string, error) {
	if p.URL != "" {
		return p.URL, nil
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("prometheus is not installed (hack/install-system-packages.sh prometheus installs Debian's package): %w", err)
	}
	dir := filepath.Join(p.h.dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return "", err
	}
	if err := p.writeScrapeTargets(); err != nil {
		return "", err
	}
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: imageprepull-controller
    file_sd_configs:
      - files: [%[2]q]
        refresh_interval: %[1]s
`, model.Duration(interval), filepath.Join(dir, "targets.json"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		return "", err
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	url := "http://" + addr
	prom, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		return "", err
	}
	if p.proc, err = p.h.run(ctx, program{
		name: "prometheus", bin: bin,
		args: []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr},
		// Ready and has scraped the controller once, so that what comes
		// next is measured from a sample.
		ready: func(ctx context.Context) error {
			v, _, err := promv1.NewAPI(prom).Query(ctx, `up{job="imageprepull-controller"} == 1`, time.Now())
			if err != nil {
				return err
			}
			if vec, _ := v.(model.Vector); len(vec) == 0 {
				return errors.New("no controller scraped yet")
			}
			return nil
		},
		readyWithin: time.Minute, waitingFor: "Prometheus's first scrape of the controller",
	}); err != nil {
		return "", err
	}
	p.URL = url
	return url, nil
}

// Stop stops Prometheus.
func (p *Prometheus) Stop() { p.proc.stop(10 * time.Second) }

// writeScrapeTargets lists the controller processes' metrics ports for
// Prometheus's file discovery.
func (p *Prometheus) writeScrapeTargets() error {
	targets := []string{}
	for _, port := range p.replicas.metricsPorts() {
		targets = append(targets, "127.0.0.1:"+strconv.Itoa(port))
	}
	b, err := json.Marshal([]map[string]any{{"targets": targets}})
	if err != nil {
		return err
	}
	dir := filepath.Join(p.h.dir, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Renamed into place: Prometheus may read the file at any moment.
	tmp := filepath.Join(dir, ".targets.json")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "targets.json"))
}
