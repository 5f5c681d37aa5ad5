package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The process runtime: a function whose runtime is PROCESS is any
// executable, started once per instance with its configuration and the
// broker's address and credentials in the environment and a client config
// file; it consumes and publishes with its own client. The worker only
// supervises it: restarts with backoff when it exits, logs its output,
// stops it (SIGTERM, then SIGKILL) on stop, update and delete.

// RuntimeProcess is the runtime value of a process function.
const RuntimeProcess = "PROCESS"

// processStopGrace is how long a process has to exit after SIGTERM.
const processStopGrace = 5 * time.Second

func (c *Config) isProcess() bool { return strings.EqualFold(c.Runtime, RuntimeProcess) }

// prepareProcess writes the executable into a directory of its own (the
// runner's; removed when it closes).
func (r *runner) prepareProcess(code []byte) error {
	base := r.m.cfg.WorkDir
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("function work directory: %w", err)
	}
	cfg := &r.rec.Config
	dir, err := os.MkdirTemp(base, cfg.Tenant+"."+cfg.Namespace+"."+cfg.Name+"-")
	if err != nil {
		return fmt.Errorf("function work directory: %w", err)
	}
	exe := filepath.Join(dir, cfg.Name)
	if err := os.WriteFile(exe, code, 0o700); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("write the function's executable: %w", err)
	}
	r.dir, r.exe = dir, exe
	return nil
}

// processEnv is the environment of instance id: what the mb CLI reads
// (MB_SERVICE_URL, MB_ADMIN_URL, MB_AUTH_TOKEN) and the function's
// settings. Nothing else of the node's environment is passed on.
func (r *runner) processEnv(id int, dir, clientConf string) []string {
	cfg := &r.rec.Config
	full, _ := json.Marshal(cfg)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"TMPDIR=" + dir,
		"MB_SERVICE_URL=" + r.m.cfg.BrokerURL,
		"MB_ADMIN_URL=" + r.m.cfg.WebURL,
		"MB_CLIENT_CONFIG=" + clientConf,
		"MB_FUNCTION_TENANT=" + cfg.Tenant,
		"MB_FUNCTION_NAMESPACE=" + cfg.Namespace,
		"MB_FUNCTION_NAME=" + cfg.Name,
		"MB_FUNCTION_INSTANCE_ID=" + strconv.Itoa(id),
		"MB_FUNCTION_PARALLELISM=" + strconv.Itoa(cfg.Parallelism),
		"MB_FUNCTION_INPUTS=" + strings.Join(cfg.Inputs, ","),
		"MB_FUNCTION_TOPICS_PATTERN=" + cfg.TopicsPattern,
		"MB_FUNCTION_OUTPUT=" + cfg.Output,
		"MB_FUNCTION_LOG_TOPIC=" + cfg.LogTopic,
		"MB_FUNCTION_DEAD_LETTER_TOPIC=" + cfg.DeadLetterTopic,
		"MB_FUNCTION_SUBSCRIPTION=" + cfg.SubName,
		"MB_FUNCTION_SUBSCRIPTION_TYPE=" + cfg.SubscriptionType,
		"MB_FUNCTION_SUBSCRIPTION_POSITION=" + cfg.SubscriptionPosition,
		"MB_FUNCTION_PROCESSING_GUARANTEES=" + cfg.ProcessingGuarantees,
		"MB_FUNCTION_USER_CONFIG=" + string(r.ucfg),
		"MB_FUNCTION_CONFIG=" + string(full),
	}
	if r.m.cfg.ProcessAuthToken != "" {
		env = append(env, "MB_AUTH_TOKEN="+r.m.cfg.ProcessAuthToken)
	}
	return env
}

// clientConf is the instance's client config file, in the key=value
// format of Pulsar's client.conf.
func (r *runner) clientConf() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "brokerServiceUrl=%s\nwebServiceUrl=%s\n", r.m.cfg.BrokerURL, r.m.cfg.WebURL)
	if t := r.m.cfg.ProcessAuthToken; t != "" {
		fmt.Fprintf(&b, "authPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken\nauthParams=token:%s\n", t)
	}
	return b.Bytes()
}

// processSession runs the executable once; its exit while the instance
// should run is a failure (the supervisor restarts it after a backoff).
func (i *instance) processSession(ctx context.Context) error {
	r := i.r
	dir := filepath.Join(r.dir, "instance-"+strconv.Itoa(i.ID))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "client.conf")
	if err := os.WriteFile(conf, r.clientConf(), 0o600); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	cmd := exec.CommandContext(ctx, r.exe)
	cmd.Dir = dir
	cmd.Env = r.processEnv(i.ID, dir, conf)
	stdout := &lineLog{log: i.log, stream: "stdout", level: slog.LevelInfo}
	stderr := &lineLog{log: i.log, stream: "stderr", level: slog.LevelInfo}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = processStopGrace
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(r.exe), err)
	}
	i.MarkRunning()
	i.log.Info("function process started", "pid", cmd.Process.Pid)
	err := cmd.Wait()
	stdout.flush()
	stderr.flush()
	if ctx.Err() != nil {
		if i.Unsubscribing() {
			i.unsubscribeProcess()
		}
		return nil
	}
	if err == nil {
		return fmt.Errorf("function process exited with status 0")
	}
	return fmt.Errorf("function process exited: %w", err)
}

// unsubscribeProcess removes the subscription the process used (delete
// with cleanupSubscription), through the worker's own client.
func (i *instance) unsubscribeProcess() {
	consumer, err := i.r.m.client.Subscribe(i.r.consumerOptions())
	if err == nil {
		err = consumer.Unsubscribe()
		consumer.Close()
	}
	if err != nil {
		i.log.Warn("function subscription not removed", "subscription", i.r.rec.Config.SubName, "error", err)
	}
}

// lineLog logs what a process writes, a record per line.
type lineLog struct {
	log    *slog.Logger
	stream string
	level  slog.Level
	buf    []byte
}

// maxLogLine bounds a line kept before it is logged as is.
const maxLogLine = 64 << 10

func (l *lineLog) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		k := bytes.IndexByte(l.buf, '\n')
		if k < 0 {
			break
		}
		l.emit(l.buf[:k])
		l.buf = l.buf[k+1:]
	}
	if len(l.buf) > maxLogLine {
		l.flush()
	}
	return len(p), nil
}

func (l *lineLog) flush() {
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

func (l *lineLog) emit(line []byte) {
	l.log.Log(context.Background(), l.level, string(bytes.TrimRight(line, "\r")), "stream", l.stream)
}
