"""Where outbound messages go: WhatsApp's Cloud API, or the simulator for a number explicitly simulated (the
demo). A clinic with no number has no provider: nothing is sent and no tick is ever shown for it."""

from conversations.models import Clinic, WhatsAppChannel
from conversations.providers.base import Provider


def channel_of(clinic_id: int, number_id: str = "") -> WhatsAppChannel | None:
    """The clinic's WhatsApp number `number_id` (a phone_number_id) if it still has it, else its first."""
    channels = WhatsAppChannel.objects.filter(clinic_id=clinic_id)
    chosen = channels.filter(phone_number_id=number_id).first() if number_id else None
    return chosen or channels.order_by("id").first()


def provider_for(clinic: Clinic | int, number_id: str = "") -> Provider | None:
    """Who sends for the clinic: from the number `number_id` (the one the patient wrote to), else the
    clinic's first; the simulator only for a number marked simulated; None when the clinic has no number."""
    from conversations.providers.simulator import SimulatorProvider
    from conversations.providers.whatsapp_cloud import WhatsAppCloudProvider

    channel = channel_of(clinic if isinstance(clinic, int) else clinic.pk, number_id)
    if channel is None:
        return None
    if channel.simulated:
        return SimulatorProvider()
    return WhatsAppCloudProvider(channel)
