module github.com/roomcast/roomcast/tests

go 1.26.8
