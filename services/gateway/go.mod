module github.com/roomcast/roomcast/services/gateway

go 1.26.8

require github.com/roomcast/roomcast/pkg v0.0.0

replace github.com/roomcast/roomcast/pkg => ../../pkg
