module core/spawner

go 1.22
