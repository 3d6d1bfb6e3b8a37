module warden.dev/executor

go 1.26
