//go:build disruptive

package disruptive

import (
	"context"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

var redisStart = []string{"--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"}

func redisUp() bool {
	return exec.Command("redis-cli", "-h", "127.0.0.1", "ping").Run() == nil
}

func startRedis(t *testing.T) {
	if redisUp() {
		return
	}
	if out, err := exec.Command("redis-server", redisStart...).CombinedOutput(); err != nil {
		t.Errorf("restart redis: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, "redis back", redisUp)
}

func ready(url string) bool {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// call sends cmd and returns its reply, skipping messages.
func call(t *testing.T, r *harness.Raw, id uint64, cmd map[string]any) *protocol.Reply {
	t.Helper()
	cmd["id"] = id
	r.WriteJSON(cmd)
	for {
		f := r.ReadServer()
		if f.Reply != nil && f.Reply.ID == id {
			return f.Reply
		}
	}
}

// TestRedisRestart: Redis goes away (and comes back empty). Nothing
// crashes; publishes fail with unavailable meanwhile; readiness follows
// Redis; afterwards clients carry on, and one resuming its old session is
// told recovered=false.
func TestRedisRestart(t *testing.T) {
	env := harness.NewEnv(t)
	gws := []*harness.Process{env.Gateway(t, "gw-redis-0"), env.Gateway(t, "gw-redis-1")}
	t.Cleanup(func() { startRedis(t) })
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}
	tok := env.Token(t, "member", caps, time.Hour)

	member, hello := harness.Connect(t, gws[0].WSURL(), tok)
	if rep := call(t, member, 1, map[string]any{"op": "join", "room": "r"}); rep.Error != nil {
		t.Fatal(rep.Error)
	}
	pub, _ := harness.Connect(t, gws[1].WSURL(), env.Token(t, "pub", caps, time.Hour))
	rep := call(t, pub, 1, map[string]any{"op": "publish", "room": "r", "data": 1})
	if rep.Error != nil {
		t.Fatal(rep.Error)
	}
	before := *rep.Position

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, "redis-cli", "-h", "127.0.0.1", "shutdown", "nosave").Run()
	testenv.WaitFor(t, 10*time.Second, "redis down", func() bool { return !redisUp() })

	rep = call(t, pub, 2, map[string]any{"op": "publish", "room": "r", "data": 2})
	if rep.Error == nil || rep.Error.Code != protocol.CodeUnavailable {
		t.Fatalf("publish while Redis is down: %+v, want unavailable", rep)
	}
	testenv.WaitFor(t, 10*time.Second, "readyz unready without Redis", func() bool { return !ready(gws[0].HTTPURL()) })
	// A connection made meanwhile still works, without a resumable session.
	during := harness.DialRaw(t, gws[0].WSURL(), nil, protocol.SubprotocolJSON, protocol.TokenSubprotocolPrefix+tok)
	if c := during.ReadServer().Connected; c == nil || c.SessionID != "" {
		t.Fatalf("connected during the outage: %+v", c)
	}

	startRedis(t)
	testenv.WaitFor(t, 10*time.Second, "readyz ready again", func() bool { return ready(gws[0].HTTPURL()) && ready(gws[1].HTTPURL()) })
	// Redis came back empty: the room starts a new epoch and the member
	// (still connected, never re-joined) keeps receiving.
	var after protocol.Position
	testenv.WaitFor(t, 10*time.Second, "publish works again", func() bool {
		rep := call(t, pub, 3, map[string]any{"op": "publish", "room": "r", "data": 3})
		if rep.Error != nil {
			return false
		}
		after = *rep.Position
		return true
	})
	if after.Epoch == before.Epoch {
		t.Fatalf("epoch %q survived an empty Redis", after.Epoch)
	}
	for {
		f := member.ReadServer()
		if f.Message != nil && f.Message.Epoch == after.Epoch && f.Message.Offset == after.Offset {
			break
		}
	}

	// The member's old session is gone: a resume is refused and a join
	// with the old position is not recovered.
	_ = member.Conn.Close()
	back, _ := harness.Connect(t, gws[1].WSURL(), tok)
	if rep := call(t, back, 1, map[string]any{"op": "resume", "session_id": hello.SessionID, "resume_token": hello.ResumeToken}); rep.Error == nil || rep.Error.Code != protocol.CodeSessionInvalid {
		t.Fatalf("resume after Redis lost everything: %+v", rep)
	}
	jr := call(t, back, 2, map[string]any{"op": "join", "room": "r", "since": map[string]any{"offset": before.Offset, "epoch": before.Epoch}})
	if jr.Error != nil || jr.Recovered {
		t.Fatalf("join since a lost epoch: %+v, want recovered=false", jr)
	}
	for i, gw := range gws {
		if gw.Exited() {
			t.Fatalf("gateway %d exited", i)
		}
	}
}
