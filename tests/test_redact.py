"""hasupd.redact: the one place that masks secrets (issue 16)."""

from hasupd import redact


def test_argv_masks_secret_options_and_a_fence_agents_short_password():
    argv = ["fence_ipmilan", "--ip=10.0.0.1", "-l", "admin", "-p", "hunter22", "--password=xyz123",
            "--community", "public9", "-n", "node2"]
    assert redact.argv(argv) == ["fence_ipmilan", "--ip=10.0.0.1", "-l", "admin", "-p", "***",
                                 "--password=***", "--community", "***", "-n", "node2"]
    # -p is a port elsewhere: only fence agents' -p is the password
    assert redact.argv(["ssh", "-p", "2222", "host"]) == ["ssh", "-p", "2222", "host"]


def test_text_masks_shapes_and_registered_values_wherever_they_travel():
    assert redact.text("cmd --password=abc123 -x") == "cmd --password=*** -x"
    assert redact.text("cmd --passwd 'a b c' -x") == "cmd --passwd *** -x"
    assert redact.text('{"password": "abc123", "user": "u"}') == '{"password": ***, "user": "u"}'
    assert redact.text("ipaddr=1.2.3.4 passwd=abc123") == "ipaddr=1.2.3.4 passwd=***"
    redact.register("Zq-unique-88")
    assert redact.text("login failed: Zq-unique-88 rejected") == "login failed: *** rejected"
    assert redact.value({"a": ["x Zq-unique-88"], "b": 1}) == {"a": ["x ***"], "b": 1}
    assert redact.text("nothing secret here: 10.99.0.20/24 on eth0") == "nothing secret here: 10.99.0.20/24 on eth0"
