// Package pgtest runs a PostgreSQL 15 server for tests: initdb and pg_ctl
// from the Debian package (postgresql-15), as the unprivileged user
// nobody when the test runs as root (Postgres refuses root), on loopback
// with wal_level=logical.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running test cluster.
type Server struct {
	t    testing.TB
	dir  string
	Port int
	bin  string
}

func findBin() (string, error) {
	for _, d := range []string{"/usr/lib/postgresql/15/bin", "/usr/local/bin"} {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL 15 is not installed (apt-get install -y postgresql-15; .ci/run installs it)")
}

// Start makes and starts a cluster; it is stopped and removed at the end
// of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mb-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, dir: dir, bin: bin}
	t.Cleanup(func() {
		s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.Start()
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) run(name string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	path := filepath.Join(s.bin, name)
	if os.Geteuid() == 0 {
		cmd = exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// Start starts the (stopped) server and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	opts := "-c listen_addresses=127.0.0.1 -p " + strconv.Itoa(s.Port) + " -c unix_socket_directories=" + s.dir +
		" -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c fsync=off -c shared_buffers=32MB"
	if out, err := s.run("pg_ctl", "-D", s.data(), "-w", "-l", filepath.Join(s.dir, "log"), "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		s.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Restart stops the server (fast shutdown) and starts it again.
func (s *Server) Restart() {
	s.t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.data(), "-w", "-m", "fast", "stop"); err != nil {
		s.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
	s.Start()
}

// DSN is the superuser's connection string to database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// CPU is the CPU time (user and system) the server's processes have used
// so far, by kind: "walsender" (logical decoding for replication
// connections), "backend" (client sessions) and "other" (the postmaster
// and its background workers). Processes that exited are not counted:
// take differences over phases whose connections stay open. Linux only
// (it reads /proc).
func (s *Server) CPU() (map[string]time.Duration, error) {
	pidFile, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	master := strings.TrimSpace(first)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	out := map[string]time.Duration{}
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue // exited
		}
		// After the command in parentheses: state ppid ... utime (14) stime (15).
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 || (f[1] != master && pid != master) {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		kind := "other"
		switch c := string(cmd); {
		case strings.HasPrefix(c, "postgres: walsender"):
			kind = "walsender"
		case pid != master && strings.Contains(c, "127.0.0.1("):
			kind = "backend"
		}
		out[kind] += time.Duration(ut+st) * tick
	}
	return out, nil
}
