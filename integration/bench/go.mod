module github.com/palisade-runtime/palisade/integration/bench

go 1.26.6

require (
	github.com/pelletier/go-toml/v2 v2.4.3
	golang.org/x/image v0.48.0
)
