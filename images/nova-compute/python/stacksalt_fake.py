"""nova's fake virt driver with a node identity that survives a restart (lab only).

nova's own FakeDriver (nova/virt/fake.py) names its node's UUID from oslo's uuidsentinel,
new in every process, and writes no ``compute_id``; nova-compute then refuses its second
start on a host ("No local node identity found, but this is not our first startup"), so a
fake compute cannot be rolled. This one takes the node UUID where libvirt's driver takes
it: ``nova.virt.node.get_local_node_uuid()``, read from ``$state_path/compute_id`` or
made there once. Its guests still live in the process's memory (libvirt's outlive
nova-compute): after a restart a hard reboot spawns them again (FakeDriver.reboot).

Installed as nova/virt/stacksalt_fake.py (nova loads a driver from nova.virt only); set
by the model: ``compute_driver = stacksalt_fake.FakeDriver``.
"""

from nova.virt import fake, node


class FakeDriver(fake.FakeDriver):
    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        resources["uuid"] = node.get_local_node_uuid()
        return resources

    def get_nodenames_by_uuid(self, refresh=False):
        return {node.get_local_node_uuid(): n for n in self.get_available_nodes()}
