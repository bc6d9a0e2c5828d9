# The engines the streaming tests run on (tools/engines/README.md): a KRaft Kafka broker, Beam's Kafka expansion
# service with a Java worker pool, Beam's Prism runner and Google's Pub/Sub fake (pstest). `make engines` installs
# them into the git-ignored .tools/engines; each piece has a stamp file, so a second run does nothing, and changing
# a pom, the pstest sources or a version below reinstalls only that piece. Downloads are cached in .tools/m2 (Maven)
# and .tools/go (Go modules and build cache), so a fresh clone needs only java, mvn and go on the PATH.
# Tests start the engines through tests/engines.py.

ENGINES_DIR := .tools/engines
ENGINES_ABS := $(CURDIR)/$(ENGINES_DIR)
ENGINES_M2 ?= $(CURDIR)/.tools/m2
ENGINES_GOPATH ?= $(CURDIR)/.tools/go
# Prism at the Python SDK's version (apache-beam 2.77): the runner speaks the same job and Fn API protos as the SDK
# that submits to it. The Kafka expansion service stays at 2.73.0, the newest Beam whose Java parts Maven serves here.
PRISM_VERSION ?= v2.77.0
MVN ?= mvn
GO ?= go

ENGINES_MVN := $(MVN) -q -B -Dmaven.repo.local=$(ENGINES_M2)
ENGINES_GO_ENV := GOPATH=$(ENGINES_GOPATH) GOMODCACHE=$(ENGINES_GOPATH)/mod GOCACHE=$(ENGINES_GOPATH)/cache \
	GOBIN=$(ENGINES_ABS)/bin GOFLAGS='-mod=mod -modcacherw' GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0

ENGINE_STAMPS := $(ENGINES_DIR)/kafka/.installed $(ENGINES_DIR)/expansion/.installed \
	$(ENGINES_DIR)/bin/.prism-$(PRISM_VERSION) $(ENGINES_DIR)/bin/.pstest-installed

.PHONY: engines engines-clean

## engines: the Kafka broker, the Kafka expansion service + Java worker pool, Prism and pstest, into .tools/engines
engines: $(ENGINE_STAMPS)

# Removes the installed engines, not the download caches (.tools/m2, .tools/go): a reinstall is then offline-fast.
engines-clean:
	rm -rf $(ENGINES_DIR)

# One Maven classpath: copy-dependencies into lib.tmp, then swap it in, so an interrupted run leaves no half lib.
define engines_classpath
	@command -v java >/dev/null || { echo "make engines: java (a JDK 17+) is not on the PATH" >&2; exit 2; }
	@command -v $(MVN) >/dev/null || { echo "make engines: $(MVN) (Maven 3) is not on the PATH" >&2; exit 2; }
	rm -rf $(ENGINES_DIR)/$(1)/lib.tmp
	mkdir -p $(ENGINES_DIR)/$(1)
	$(ENGINES_MVN) -f tools/engines/$(1)/pom.xml dependency:copy-dependencies \
		-DoutputDirectory=$(ENGINES_ABS)/$(1)/lib.tmp -DincludeScope=runtime
	rm -rf $(ENGINES_DIR)/$(1)/lib
	mv $(ENGINES_DIR)/$(1)/lib.tmp $(ENGINES_DIR)/$(1)/lib
	touch $@
endef

$(ENGINES_DIR)/kafka/.installed: tools/engines/kafka/pom.xml
	$(call engines_classpath,kafka)

$(ENGINES_DIR)/expansion/.installed: tools/engines/expansion/pom.xml
	$(call engines_classpath,expansion)

$(ENGINES_DIR)/bin/.prism-$(PRISM_VERSION):
	@command -v $(GO) >/dev/null || { echo "make engines: $(GO) (Go 1.25+) is not on the PATH" >&2; exit 2; }
	mkdir -p $(ENGINES_DIR)/bin
	rm -f $(ENGINES_DIR)/bin/.prism-*
	cd $(ENGINES_ABS)/bin && $(ENGINES_GO_ENV) GOFLAGS=-modcacherw $(GO) install github.com/apache/beam/sdks/v2/go/cmd/prism@$(PRISM_VERSION)
	touch $@

$(ENGINES_DIR)/bin/.pstest-installed: tools/engines/pstest/main.go tools/engines/pstest/go.mod tools/engines/pstest/go.sum
	@command -v $(GO) >/dev/null || { echo "make engines: $(GO) (Go 1.25+) is not on the PATH" >&2; exit 2; }
	mkdir -p $(ENGINES_DIR)/bin
	cd tools/engines/pstest && $(ENGINES_GO_ENV) $(GO) build -o $(ENGINES_ABS)/bin/pstest .
	touch $@
