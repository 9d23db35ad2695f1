package app

import (
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/services/gateway/config"
	"github.com/roomcast/roomcast/services/gateway/internal/conn"
)

// historyReader reads history from the history service at
// GATEWAY_HISTORY_URL merged with the rooms' recovery streams; nil (no
// history) when the URL is empty.
func historyReader(cfg *config.Config, rdb redis.UniversalClient, rlog *roomlog.Log) conn.HistoryReader {
	if cfg.HistoryURL == "" {
		return nil
	}
	archive := history.NewClient(cfg.HistoryURL, cfg.ServiceToken, &http.Client{Timeout: 10 * time.Second})
	return history.NewReader(archive, history.NewRedisStream(rdb, rlog))
}
