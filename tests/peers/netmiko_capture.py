#!/usr/bin/env python3
"""The reference: what Netmiko gives for the same commands on the same device.

Usage: netmiko_capture.py DEVICE_TYPE PORT USERNAME COMMAND...
Environment: NETMIKO_PASSWORD (login), NETMIKO_SECRET (enable secret, optional).
Connects to 127.0.0.1:PORT, enters enable mode when a secret is given, runs each command
with send_command() and prints JSON: {"prompt": ..., "outputs": [text, ...]}.
"""
import json
import os
import sys

from netmiko import ConnectHandler

device_type, port, username, *commands = sys.argv[1:]
secret = os.environ.get("NETMIKO_SECRET", "")
device = {
    "device_type": device_type,
    "host": "127.0.0.1",
    "port": int(port),
    "username": username,
    "password": os.environ["NETMIKO_PASSWORD"],
    "secret": secret,
    "fast_cli": False,
    "conn_timeout": 20,
    "allow_agent": False,
    "use_keys": False,
    "ssh_config_file": None,
}
with ConnectHandler(**device) as conn:
    if secret:
        conn.enable()
    prompt = conn.find_prompt()
    outputs = [conn.send_command(c, read_timeout=30) for c in commands]
print(json.dumps({"prompt": prompt, "outputs": outputs}))
