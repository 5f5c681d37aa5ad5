package s3test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// An idle gateway serves requests, and every thread of it runs at nice 19
// under SCHED_IDLE (chrt and nice exec it: the pid is the gateway's).
func TestIdleGateway(t *testing.T) {
	g := Start(t, Idle())
	s := g.Bucket(t, "idle", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Put(ctx, "k", []byte("v"), true); err != nil {
		t.Fatal(err)
	}
	pid := g.Pid()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.TrimSpace(string(comm)); c != "versitygw" {
		t.Fatalf("process %d is %q, want the gateway itself", pid, c)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue // the thread exited
		}
		// Fields after the command's closing parenthesis: state is the
		// 3rd field of stat, nice the 19th, policy the 41st.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if nice, policy := f[19-3], f[41-3]; nice != "19" || policy != "5" {
			t.Fatalf("thread %s: nice %s, policy %s; want 19 and 5 (SCHED_IDLE)", task.Name(), nice, policy)
		}
	}
}
