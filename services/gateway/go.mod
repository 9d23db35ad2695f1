module github.com/roomcast/roomcast/services/gateway

go 1.26.8
