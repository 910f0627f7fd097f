# shellcheck shell=bash
# Ansible for a fleet of tests/bed/fleet.sh, as a user configures it
# (sourced by tests/fleet.sh and bench/fleet-serve.sh). The only departures
# from the defaults keep Ansible's own files in the run's directory (home,
# local temp, control sockets) and its remote temp dir in the hosts' /tmp.

# fleet_ansible_config STATE FLEET ROOT: writes STATE/ansible.cfg (the
# fleet's inventory, the role of ROOT/packaging/ansible) and
# STATE/install.yml (the role on every host), exports ANSIBLE_CONFIG.
fleet_ansible_config() {
  local state=$1 fleet=$2 root=$3
  cat >"$state/ansible.cfg" <<EOF
[defaults]
inventory = $fleet/inventory
roles_path = $root/packaging/ansible/roles
home = $state/ansible
local_tmp = $state/ansible/tmp
remote_tmp = /tmp/.ansible-remote
retry_files_enabled = False
nocolor = True
forks = 10

[ssh_connection]
control_path_dir = $state/ansible/cp
EOF
  cat >"$state/install.yml" <<'EOF'
---
- name: PostgreSQL with pgoci
  hosts: fleet
  become: true
  gather_facts: false
  roles:
    - pgoci
EOF
  export ANSIBLE_CONFIG=$state/ansible.cfg
  unset ANSIBLE_ROLES_PATH ANSIBLE_INVENTORY ANSIBLE_REMOTE_TMP ANSIBLE_SSH_USETTY ANSIBLE_PIPELINING
}
