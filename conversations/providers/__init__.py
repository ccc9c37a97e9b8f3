"""Where outbound messages go: WhatsApp's Cloud API, or the simulator where no real channel is set up."""

from conversations.models import Clinic, WhatsAppChannel
from conversations.providers.base import Provider


def channel_of(clinic_id: int) -> WhatsAppChannel | None:
    return WhatsAppChannel.objects.filter(clinic_id=clinic_id).order_by("id").first()


def provider_for(clinic: Clinic | int) -> Provider:
    from conversations.providers.simulator import SimulatorProvider
    from conversations.providers.whatsapp_cloud import WhatsAppCloudProvider

    channel = channel_of(clinic if isinstance(clinic, int) else clinic.pk)
    if channel is None or channel.simulated:
        return SimulatorProvider()
    return WhatsAppCloudProvider(channel)
