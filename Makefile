# MessageBus build and test entry points. `make test` is what CI runs.
GO ?= go
STATICCHECK_VERSION := v0.6.1
# The S3 server of the tiered-storage tests (internal/ledger/tiered).
VERSITYGW_VERSION := v1.8.0
GOAWS_VERSION ?= v0.5.4

.PHONY: build run test testdeps lint deploy-check unit test-etcd test-cluster fuzz compat compat-cluster bench proto

build:
	$(GO) build -o bin/mb ./cmd/mb

run: build
	./bin/mb standalone

# The whole suite: static checks, all tests with the race detector, the
# integration suite again with the brokers' metadata in etcd, and bounded
# fuzz runs; each step prints how long it took, so growth is seen.
test:
	@for t in testdeps lint deploy-check unit test-etcd fuzz compat compat-cluster; do \
		start=$$(date +%s); \
		$(MAKE) --no-print-directory $$t || exit 1; \
		echo "== make $$t: $$(( $$(date +%s) - start )) s"; \
	done

# What the tests run besides Go: the OpenID provider of the access tests
# (npm oidc-provider on node), playwright-core and Chromium for the console's
# browser test, the Versity S3 gateway of the tiered-storage tests (in
# $GOPATH/bin) and goaws (SQS/SNS) of the connector tests (in
# $GOPATH/lib/goaws-VERSION/cmd), installed when missing so that a fresh
# clone needs nothing but `make test`; PostgreSQL 15 comes from Debian
# (.ci/run installs it).
OIDC_DIR := internal/testutil/oidcprovider
# The console's browser test: playwright-core (npm) driving Debian's Chromium.
CONSOLE_DIR := test/testdata/console
# The Kinesis connector tests: kinesalite (npm) on node.
KINESALITE_DIR := internal/testutil/kinesalitetest
testdeps:
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "the access tests need Node.js 20+ and npm (e.g. apt-get install -y nodejs npm)"; exit 1; }
	@test -x /usr/lib/postgresql/15/bin/pg_ctl || command -v pg_ctl >/dev/null || { echo "the Postgres CDC connector tests need PostgreSQL 15 (apt-get install -y postgresql-15)"; exit 1; }
	@test -f $(OIDC_DIR)/node_modules/.package-lock.json && cmp -s $(OIDC_DIR)/package-lock.json $(OIDC_DIR)/node_modules/.installed-lock.json || { \
		npm ci --prefix $(OIDC_DIR) --no-audit --no-fund && cp $(OIDC_DIR)/package-lock.json $(OIDC_DIR)/node_modules/.installed-lock.json; }
	@test -f $(CONSOLE_DIR)/node_modules/.package-lock.json && cmp -s $(CONSOLE_DIR)/package-lock.json $(CONSOLE_DIR)/node_modules/.installed-lock.json || { \
		npm ci --prefix $(CONSOLE_DIR) --no-audit --no-fund && cp $(CONSOLE_DIR)/package-lock.json $(CONSOLE_DIR)/node_modules/.installed-lock.json; }
	@test -f $(KINESALITE_DIR)/node_modules/.package-lock.json && cmp -s $(KINESALITE_DIR)/package-lock.json $(KINESALITE_DIR)/node_modules/.installed-lock.json || { \
		npm ci --prefix $(KINESALITE_DIR) --no-audit --no-fund && cp $(KINESALITE_DIR)/package-lock.json $(KINESALITE_DIR)/node_modules/.installed-lock.json; }
	@test -x "$${MB_CHROMIUM:-/usr/bin/chromium}" || echo "note: no Chromium, the console's browser test will skip (apt-get install -y chromium, or set MB_CHROMIUM)"
	@$(GO) version -m "$$($(GO) env GOPATH)/bin/versitygw" 2>/dev/null | grep -q 'mod.*github.com/versity/versitygw.*$(VERSITYGW_VERSION)' || \
		$(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	@test -x "$$($(GO) env GOPATH)/lib/goaws-$(GOAWS_VERSION)/cmd" || \
		GOBIN="$$($(GO) env GOPATH)/lib/goaws-$(GOAWS_VERSION)" $(GO) install github.com/Admiral-Piett/goaws/app/cmd@$(GOAWS_VERSION)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The Kubernetes packaging (deploy/): helm's linter and the chart rendered
# with its default (cluster) and standalone values, every manifest strictly
# decoded into its k8s.io/api type; no cluster, no network. A Go module of its
# own (deploy/check) keeps helm's dependencies out of go.mod.
deploy-check:
	cd deploy/check && $(GO) vet ./... && $(GO) test -count=1 ./...

unit: testdeps
	$(GO) test -race -timeout 40m ./...

# The integration suite (test/) once more, every broker keeping its metadata
# in an etcd v3.7 member the test process runs (about 4 min on 2 cores).
test-etcd: testdeps
	@start=$$(date +%s); \
	MB_TEST_METADATA_STORE=etcd $(GO) test -race -count=1 -timeout 40m ./test/; rc=$$?; \
	echo "integration suite on etcd took $$(( $$(date +%s) - start )) s"; exit $$rc

# Only the cluster-mode tests (3 etcd members, the Versity gateway, 3 mb
# broker processes; kill -9, SIGSTOP and SIGTERM of a topic's owner under
# load; kill -9 of the etcd leader, a gateway restart, a rolling restart and
# a network-namespace partition, test/cluster_faults_test.go). `make unit`
# runs them too (about 5 min under -race).
test-cluster: testdeps
	$(GO) test -race -count=1 -timeout 10m -run 'TestCluster' ./test/ ./internal/cluster/ ./internal/ledger/cluster/

# Execution counts, not durations (about 20 s, 10 s, 10 s and 5 s here): with a
# duration, Go 1.26's fuzz coordinator can fail a target with "context
# deadline exceeded" as the time runs out (go.dev/issue/75804, fixed in 1.27).
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecodeFrame -fuzztime=400000x ./internal/wire
	$(GO) test -run='^$$' -fuzz=FuzzParseMetadata -fuzztime=200000x ./internal/wire
	$(GO) test -run='^$$' -fuzz=FuzzParseSingleMetadata -fuzztime=100000x ./internal/wire
	$(GO) test -run='^$$' -fuzz=FuzzParseMarkers -fuzztime=50000x ./internal/wire
	$(GO) test -run='^$$' -fuzz=FuzzVerify -fuzztime=150000x ./internal/auth/token
	$(GO) test -run='^$$' -fuzz=FuzzParseBasicUsers -fuzztime=30000x ./internal/auth
	$(GO) test -run='^$$' -fuzz=FuzzSchemaDefinition -fuzztime=20000x ./internal/schema
	$(GO) test -run='^$$' -fuzz=FuzzParseBundle -fuzztime=50000x ./internal/cluster
	$(GO) test -run='^$$' -fuzz=FuzzClaimKey -fuzztime=50000x ./internal/cluster
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=100000x ./internal/ledger/object
	$(GO) test -run='^$$' -fuzz=FuzzDecodeOutput -fuzztime=100000x ./pkg/function/abi
	$(GO) test -run='^$$' -fuzz=FuzzSecretReference -fuzztime=50000x ./internal/connectors
	$(GO) test -run='^$$' -fuzz=FuzzDecodeMessage -fuzztime=100000x ./pkg/function/abi
	$(GO) test -run='^$$' -fuzz=FuzzParseSourcePosition -fuzztime=50000x ./internal/geo
	$(GO) test -run='^$$' -fuzz=FuzzSplitServiceURL -fuzztime=50000x ./internal/geo
	$(GO) test -run='^$$' -fuzz=FuzzParseListeners -fuzztime=20000x ./server
	$(GO) test -run='^$$' -fuzz=FuzzAppendJSONString -fuzztime=50000x ./internal/connectors
	$(GO) test -run='^$$' -fuzz=FuzzCredentials -fuzztime=20000x ./internal/replication
	$(GO) test -run='^$$' -fuzz=FuzzConnectorConfig -fuzztime=20000x ./internal/connectors
	$(GO) test -run='^$$' -fuzz=FuzzDeaggregate -fuzztime=50000x ./internal/connectors/kinesis

# The official Go client's own tests (pulsar-client-go's pulsar and
# pulsaradmin packages, pinned) against mb standalone configured like that
# suite's CI broker on ports 6650/6651/8080/8443, one process per test
# (about 8 min on 2 cores); writes docs/compatibility.md.
compat:
	./compat/run.sh

# The same suite against a 3-broker cluster (compat/run.sh with
# COMPAT_CLUSTER=1: 3 embedded etcd members, the Versity gateway, 3 mb broker
# processes, broker 0 on the suite's ports). make test runs the representative
# subset below (25 tests: produce/consume, partitioned topics across brokers,
# TLS, token and HTTP(S) lookups, Key_Shared, seek, DLQ/RLQ, chunking, admin
# stats fanned out over partitions; about 3 min); the whole suite takes about
# 18 min on 2 cores and writes docs/compatibility-cluster.md:
# make compat-cluster COMPAT_CLUSTER_RUN=.
COMPAT_CLUSTER_RUN ?= ^(TestProducerConsumer|TestTLSConnection|TestTLSAuth|TestTokenAuth|TestHTTPSConnection|TestHTTPSAuth|TestHTTPTokenAuth|TestHTTPTopicPartitions|TestHTTPLookupAvroSchema|TestPartitionTopicsConsumerPubSub|TestConsumerKeyShared|TestBatchMessageReceive|TestReader|TestReaderWithSeekByID|TestDLQ|TestRLQSpecifiedPartitionTopic|TestRegexConsumerDiscover|TestConsumerCompression|TestChunkSize|TestConsumerSeekByTimeOnPartitionedTopic|TestProducerLastSequenceID|TestGetAllActiveBrokers|TestPeekMessagesWithProperties|TestPartitionState|TestPartitionedTopicStatsTimestamps)$$
compat-cluster:
	COMPAT_CLUSTER=1 COMPAT_RUN='$(COMPAT_CLUSTER_RUN)' \
	COMPAT_OUT=$(if $(filter .,$(COMPAT_CLUSTER_RUN)),docs/compatibility-cluster.md,$${TMPDIR:-/tmp}/compatibility-cluster-subset.md) \
	./compat/run.sh

bench:
	./bench/run.sh

proto:
	cd internal/wire/pb && $(GO) generate
