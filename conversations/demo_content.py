"""What the demo clinics, staff and patients are called and say: plain data for the demo seeder."""

DEMO_PASSWORD = "taskmed-demo"

# slug, name, time zone, area code of its patients
CLINICS = [
    ("clinica-sao-lucas", "Clínica São Lucas", "America/Sao_Paulo", "11"),
    ("consultorio-bem-estar", "Consultório Bem-Estar", "America/Manaus", "92"),
]

# username, first name, last name, {clinic slug: role}
STAFF = [
    ("ana.admin", "Ana", "Ribeiro", {"clinica-sao-lucas": "admin"}),
    ("dr.paulo", "Paulo", "Mendes", {"clinica-sao-lucas": "professional"}),
    ("julia.recepcao", "Júlia", "Carvalho", {"clinica-sao-lucas": "receptionist"}),
    ("carlos.admin", "Carlos", "Nogueira", {"consultorio-bem-estar": "admin"}),
    ("dra.helena", "Helena", "Farias", {"consultorio-bem-estar": "professional"}),
    ("bruno.recepcao", "Bruno", "Teixeira", {"consultorio-bem-estar": "receptionist"}),
    ("dra.marina", "Marina", "Assis", {"clinica-sao-lucas": "professional", "consultorio-bem-estar": "professional"}),
]

FIRST_NAMES = [
    "Maria",
    "José",
    "Ana",
    "João",
    "Antônio",
    "Francisca",
    "Carlos",
    "Adriana",
    "Paulo",
    "Juliana",
    "Lucas",
    "Márcia",
    "Pedro",
    "Fernanda",
    "Gabriel",
    "Patrícia",
    "Rafael",
    "Aline",
    "Mateus",
    "Camila",
    "Luiz",
    "Sandra",
    "Marcos",
    "Beatriz",
    "Thiago",
    "Larissa",
    "Felipe",
    "Letícia",
    "Bruno",
    "Vanessa",
    "Gustavo",
    "Raimunda",
    "Eduardo",
    "Tatiane",
    "Rodrigo",
    "Cristiane",
    "Diego",
    "Luana",
    "Vinícius",
    "Sônia",
]
LAST_NAMES = [
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Marques",
    "Machado",
    "Mendes",
    "Freitas",
]

PATIENT_LINES = [
    "Bom dia! Gostaria de marcar uma consulta.",
    "Olá, vocês atendem pelo convênio Unimed?",
    "Qual o horário disponível para essa semana?",
    "Preciso remarcar minha consulta de amanhã, tive um imprevisto.",
    "Boa tarde, o resultado do meu exame já saiu?",
    "Pode ser na quinta às 14h?",
    "Obrigada! Até lá.",
    "Vocês fazem retorno sem custo em 30 dias?",
    "Estou com febre desde ontem, consigo encaixe hoje?",
    "Qual o endereço da clínica?",
    "Preciso de uma segunda via da receita.",
    "Tem estacionamento no local?",
    "Confirmo minha presença amanhã.",
    "A doutora atende crianças?",
    "Perfeito, muito obrigado pelo retorno!",
]
STAFF_LINES = [
    "Bom dia! Claro, temos horário na quinta às 14h ou na sexta às 9h. Qual prefere?",
    "Atendemos sim pelo convênio. Pode me enviar a foto da carteirinha?",
    "Consulta confirmada! Chegue 15 minutos antes, por favor.",
    "O resultado sai em até 5 dias úteis; avisamos por aqui assim que chegar.",
    "Sem problemas, remarcamos para a próxima terça às 10h.",
    "Nosso endereço é Rua das Acácias, 120, sala 402.",
    "O retorno em até 30 dias não tem custo.",
    "Temos encaixe hoje às 17h30. Posso confirmar?",
    "A receita está pronta para retirada na recepção.",
    "Disponha! Qualquer dúvida estamos à disposição.",
]
AI_LINES = [
    "Olá! Sou a assistente virtual da clínica. Nosso horário é de segunda a sexta, das 8h às 18h.",
    "Recebi sua mensagem fora do horário. Uma pessoa da equipe responderá assim que possível.",
    "Lembrete: sua consulta é amanhã. Responda SIM para confirmar.",
]

# message type → (content, metadata) for the media and special kinds; every type appears in the demo.
MEDIA_SAMPLES = {
    "image": ("Foto do pedido médico", {"mime_type": "image/jpeg", "file_name": "pedido.jpg"}),
    "video": ("", {"mime_type": "video/mp4", "file_name": "video.mp4", "seconds": 12}),
    "audio": ("", {"mime_type": "audio/ogg; codecs=opus", "voice": True, "seconds": 21}),
    "document": ("Resultado do hemograma", {"mime_type": "application/pdf", "file_name": "hemograma.pdf"}),
    "location": ("", {"latitude": -23.5614, "longitude": -46.6559, "name": "Av. Paulista, 1578"}),
    "sticker": ("", {"mime_type": "image/webp", "animated": False}),
    "unsupported": (
        "",
        {"raw": {"type": "ephemeral", "errors": [{"code": 131051, "title": "Unsupported message type"}]}},
    ),
}

ACTION_SAMPLES = [
    ("appointment_created", {"date": "2026-12-03", "time": "14:00", "professional": "Dra. Marina Assis"}),
    ("appointment_status_changed", {"from": "scheduled", "to": "confirmed"}),
    ("appointment_status_changed", {"from": "confirmed", "to": "canceled", "reason": "Paciente remarcou"}),
]

# A patient who uses a WhatsApp username: WhatsApp sends a user id (BSUID) and no phone number.
NO_PHONE_PATIENT = {
    "user_id_suffix": "502576394655843",
    "username": "lu.ferraz",
    "profile_name": "Luísa F.",
    "timeline": [
        (
            "patient",
            "text",
            "Oi! Vi o anúncio de vocês, ainda tem horário para check-up esta semana?",
            {"referral": {"source_type": "ad", "headline": "Check-up completo", "source_url": "https://fb.me/checkup"}},
        ),
        (
            "professional",
            "text",
            "Olá, Luísa! Temos quinta às 9h ou sexta às 15h.",
            {"sent_from": "whatsapp_business_app"},
        ),
        (
            "system",
            "system",
            "Luísa F. mudou o ID de usuário do WhatsApp.",
            {"identity_change": "user_changed_user_id"},
        ),
        ("patient", "text", "Sexta às 15h, por favor.", {}),
        ("professional", "text", "Perfeito, sexta às 15h está reservado para você.", {}),
    ],
}

# Each demo clinic's labels and quick replies, so the workspace shows them from the first run.
LABELS = [("Convênio", "#2f80ed"), ("Retorno", "#2ca02c"), ("Urgente", "#d62728")]
QUICK_REPLIES = [
    ("endereco", "Olá, {{primeiro_nome}}! A {{clinica}} fica na Rua das Flores, 100, 2º andar. Até logo!"),
    ("horarios", "Atendemos de segunda a sexta, das 8h às 18h, e aos sábados das 8h às 12h."),
    ("retorno", "{{primeiro_nome}}, o retorno é sem custo em até 30 dias. Qual dia fica melhor?"),
]
