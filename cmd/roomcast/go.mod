module github.com/roomcast/roomcast/cmd/roomcast

go 1.26.8

require (
	github.com/roomcast/roomcast/pkg v0.0.0
	github.com/roomcast/roomcast/services/auth v0.0.0
	github.com/roomcast/roomcast/services/gateway v0.0.0
	github.com/roomcast/roomcast/services/history v0.0.0
	github.com/roomcast/roomcast/services/metrics v0.0.0
	github.com/roomcast/roomcast/services/presence v0.0.0
	github.com/roomcast/roomcast/services/webhooks v0.0.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/ws v1.5.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
)

replace (
	github.com/roomcast/roomcast/pkg => ../../pkg
	github.com/roomcast/roomcast/services/auth => ../../services/auth
	github.com/roomcast/roomcast/services/gateway => ../../services/gateway
	github.com/roomcast/roomcast/services/history => ../../services/history
	github.com/roomcast/roomcast/services/metrics => ../../services/metrics
	github.com/roomcast/roomcast/services/presence => ../../services/presence
	github.com/roomcast/roomcast/services/webhooks => ../../services/webhooks
)
