module github.com/strongroom/strongroom/clients/go

go 1.22
