#!/usr/bin/env bash
# Starts a PostgreSQL server for the test suite on loopback and prints its URL on stdout.
#
# Needs root or sudo, on Debian 12 or a similar system. The script:
# - installs the postgresql package when missing;
# - starts the Debian cluster "main" with pg_ctlcluster, which needs no systemd, or, when no
#   cluster exists, a server initialised in $ASYNCQUEUE_PG_DATA (default
#   /tmp/asyncqueue-postgres);
# - raises max_connections to 300, because every service under test keeps its own
#   connections, and keeps the server on loopback;
# - creates the role asyncqueue (password asyncqueue, CREATEDB) and the database
#   asyncqueue_test.
# It is safe to run again. It changes only what differs, and restarts the server only to
# apply a changed setting.
set -euo pipefail

readonly role=asyncqueue
readonly password=asyncqueue
readonly database=asyncqueue_test
port=5432
readonly min_connections=300
readonly data_directory=${ASYNCQUEUE_PG_DATA:-/tmp/asyncqueue-postgres}

log() { echo "postgres.sh: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

install_server() {
  if dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
    return
  fi
  log "installing postgresql"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    postgresql >&2
}

# Prints the version, port and status of the Debian cluster named main, or nothing when there
# is none.
debian_cluster() {
  pg_lsclusters --no-header 2>/dev/null | awk '$2 == "main" { print $1, $3, $4; exit }'
}

# Runs SQL as the superuser over the Unix socket in $psql_socket.
superuser_sql() {
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$psql_socket" -p "$port" -d postgres -Atc "$1"
}

start_debian_cluster() {
  local version=$1 status=$2
  psql_socket=/var/run/postgresql
  if [ "$status" != online ]; then
    log "starting cluster $version/main"
    as_root pg_ctlcluster "$version" main start >&2
  fi
  local changed=()
  if [ "$(superuser_sql "SHOW max_connections")" -lt "$min_connections" ]; then
    superuser_sql "ALTER SYSTEM SET max_connections = $min_connections"
    changed+=("max_connections = $min_connections")
  fi
  if [ "$(superuser_sql "SHOW listen_addresses")" != localhost ]; then
    superuser_sql "ALTER SYSTEM SET listen_addresses = 'localhost'"
    changed+=("listen_addresses = localhost")
  fi
  if [ ${#changed[@]} -gt 0 ]; then
    log "restarting cluster $version/main to apply ${changed[*]}"
    as_root pg_ctlcluster "$version" main restart >&2
  fi
}

start_own_server() {
  local bin
  bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
  psql_socket=$data_directory
  if [ ! -f "$data_directory/PG_VERSION" ]; then
    log "initialising a server in $data_directory"
    as_root install -d -o postgres -g postgres -m 0700 "$data_directory"
    as_postgres "$bin/initdb" -D "$data_directory" -U postgres --auth-local=peer \
      --auth-host=scram-sha-256 >&2
  fi
  if ! as_postgres "$bin/pg_ctl" -D "$data_directory" status >/dev/null 2>&1; then
    log "starting the server in $data_directory"
    as_postgres "$bin/pg_ctl" -D "$data_directory" -l "$data_directory/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c max_connections=$min_connections \
        -c unix_socket_directories=$data_directory" start >&2
  fi
}

create_role_and_database() {
  # ALTER runs every time, so an existing role also gets the password the printed URL uses.
  superuser_sql "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
        CREATE ROLE $role;
      END IF;
    END \$\$;
    ALTER ROLE $role LOGIN CREATEDB PASSWORD '$password';"
  if [ -z "$(superuser_sql "SELECT 1 FROM pg_database WHERE datname = '$database'")" ]; then
    log "creating database $database"
    superuser_sql "CREATE DATABASE $database OWNER $role"
  fi
}

# The postgres user cannot read most working directories; psql warns when it cannot enter one.
cd /
install_server
read -r version cluster_port status <<<"$(debian_cluster)" || true
if [ -n "${version:-}" ]; then
  port=$cluster_port
  start_debian_cluster "$version" "$status"
else
  start_own_server
fi
create_role_and_database
url="postgres://$role:$password@127.0.0.1:$port/$database"
PGCONNECT_TIMEOUT=10 psql -X -q "$url" -Atc "SELECT 1" >/dev/null
echo "$url"
