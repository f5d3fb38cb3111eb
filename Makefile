.PHONY: demo test fuzz size pkg bench
demo:   ## emulator + demo worker in workerd + www page; prints the URL
	scripts/demo.sh
test:   ## installs what is missing, then every test layer
	scripts/test.sh
fuzz:   ## ≥ 10 million inputs per target
	cargo run -q --release -p qauth-fuzz -- --execs 10000000
pkg:    ## assemble the npm package in pkg/
	scripts/build-pkg.sh
size:   ## gzip -9 size of the shipped wasm + glue
	scripts/build-pkg.sh && scripts/size.sh
bench:  ## benchmarks (figures, not tests): table + target/bench/results.json
	scripts/bench.sh
