"""Test-only action plugin: what Ansible itself resolved for a host when a task runs on it (the connection
plugin's options after the task executor set them, the sudo plugin's become password, rendered variables),
written as one JSON line. It never connects: an action that runs no module does not need the connection."""

from __future__ import annotations

import json

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import become_loader

READ = ("access_ip", "ip", "kube_network_plugin", "CLUSTER_NETWORK", "flannel_vxlan_port", "flannel_vxlan_vni",
        "calico_vxlan_port", "calico_vxlan_vni")
OPTIONS = ("host", "port", "remote_user", "password", "private_key_file", "ssh_common_args", "ssh_extra_args")


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        options = {name: self._option(name) for name in OPTIONS}
        if options["host"] is None:  # paramiko_ssh names the address remote_addr
            options["host"] = self._option("remote_addr")
        sudo = become_loader.get("sudo")
        names = [v for v in C.config.get_plugin_vars("become", "sudo") if v in task_vars]
        sudo.set_options(var_options={v: self._templar.template(task_vars[v]) for v in names})
        rendered = {}
        for name, value in task_vars.items():
            if name in READ or name.startswith("vxlan_"):
                rendered[name] = self._templar.template(value)
        record = {
            "host": task_vars["inventory_hostname"],
            "connection": self._connection._load_name,
            "options": options,
            "become": bool(self._play_context.become),
            "become_pass": sudo.get_option("become_pass"),
            "vars": rendered,
            "groups": {g: list(h) for g, h in task_vars["groups"].items()},
        }
        with open(self._task.args["out"], "a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")
        return {"changed": False}

    def _option(self, name):
        """The connection plugin's option, or None when the plugin has no such option (local)."""
        try:
            return self._connection.get_option(name)
        except Exception:  # Ansible raises KeyError or AnsibleError for an option the plugin lacks
            return None
