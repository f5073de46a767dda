module github.com/palisade-runtime/palisade/integration/bench

go 1.26.6

require golang.org/x/image v0.48.0
