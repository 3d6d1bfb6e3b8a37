/**
 * Word classes the classifier reads beside its n-grams: what a word means to an attack (an
 * instruction, a claim of authority, a permission, a secret, a covert step...). "Approvals are
 * waived" and "the confirmation step has been retired" share no n-gram but the same classes, so
 * what the model learns from one carries to the other. Every class present in a window is a
 * feature, and so is every pair of classes present together: an attack is a combination (someone
 * with authority + a check switched off), where each part alone is ordinary.
 */
import { fold } from './tokens.js';
import {
  CHECK_NOUNS,
  DISABLE_VERBS,
  INSTRUCTION_NOUNS,
  NEW_WORDS,
  OVERRIDE_VERBS,
  PRIOR,
  REVEAL_VERBS,
  RULE_NOUNS,
  SECRET_NOUNS,
  SEND_VERBS,
  VOID_WORDS,
  words,
} from './vocabulary.js';

/**
 * Words and two-word phrases of each class; a phrase is looked up as "previous-word word". The
 * classifier's words split at apostrophes and hyphens, so "don't mention" is found as "t mention"
 * and a hyphenated word is never found whole.
 */
const CLASSES: readonly (readonly string[])[] = [
  // Someone talks to the model.
  [
    ...words(`assistant assistants ai model models agent agents bot bots llm llms gpt chatgpt claude copilot chatbot chatbots
      gemini summariser summarizer summarising assistente asistente assistent ki ia модель`),
    'language model',
    'automated agent',
    'machine readers',
  ],
  // The model's instructions and limits.
  [
    ...INSTRUCTION_NOUNS,
    ...RULE_NOUNS,
    ...words('setup brief framework configured programmed initialised initialized launched deployed loaded'),
  ],
  [...PRIOR, ...words('start beginning startup first standing')],
  // Throwing the instructions away.
  [
    ...OVERRIDE_VERBS,
    ...VOID_WORDS,
    ...words('lifted suspended retired lapse lapsed unlearn disobey erase replaced ended deprecated'),
    'set aside',
    'put aside',
    'no longer',
    't apply',
    'not apply',
    'never happened',
  ],
  [...CHECK_NOUNS, ...words('approve approving signoff consent permission confirm reviewer checks gate filters')],
  // Checks switched off, or said to be unneeded.
  [
    ...DISABLE_VERBS,
    ...words('waived waive exempt exemption exempted suspend'),
    'no need',
    'not required',
    'not needed',
    'without asking',
    'without confirmation',
    'without approval',
    'without review',
    'turn off',
    'switch off',
    't ask',
  ],
  // Claims of authority.
  [
    ...words(`admin administrator administrators owner operator operators developer developers creator creators management
      cto ceo cfo legal compliance supervisor root headquarters board maintainer maintainers sysadmin officer director
      governance administrateur direction administrador amministratore beheerder администратор`),
    'security team',
    'it department',
  ],
  // Permission granted.
  [
    ...words(`authorised authorized authorise authorize authorising authorizing granted grant permitted allowed cleared
      preapproved clearance elevated superuser unrestricted sanctioned autorisé autorizado autorizzato`),
    'full access',
  ],
  [...REVEAL_VERBS, ...words('verbatim exactly unfiltered'), 'word for', 'for word'],
  [...SEND_VERBS, ...words('share sync transfer copy export tweet publish')],
  [...SECRET_NOUNS, ...words('configuration config hidden confidential vault private ssh')],
  // A step the user is not to know about.
  [
    ...words('quietly silently secretly covertly unnoticed invisible nobody'),
    't mention',
    'not mention',
    'without telling',
    't tell',
    'not tell',
    't notice',
    'between us',
    'the background',
    't say',
    'never reveal',
  ],
  [...words('delete deleting remove wipe destroy drop purge truncate rm erase kill')],
  [...words('you your yourself yours')],
  [...words('now immediately henceforth anymore onward onwards today'), 'from now', 'from here'],
  // Somewhere outside: the classifier's words split addresses, so http and the mail domain stand for them.
  [...words('external outside personal http https gmail outlook')],
  [...NEW_WORDS, ...words('updated update revised changed effective')],
  [
    ...words(`data database customer customers records files file folder mailbox emails inbox contacts table backup backups
      ledger salary payroll history`),
  ],
];

/**
 * The same classes in other languages, in the order of CLASSES (a phrase joined by "_"), so that
 * what the model learns from English pairs of classes carries to attacks in languages it has few
 * examples of. Only the words the shared vocabulary spread into CLASSES does not already have.
 */
const OTHER_LANGUAGES: readonly string[] = [
  `modèle modello modelo asystent asystencie asistan ассистент помощник бот асистент помічник asisten tro_ly βοηθός
   βοηθέ المساعد مساعد सहायक העוזר עוזר`,
  `instrukcji talimatlar talimatları kurallar kuralları інструкції instruktioner regler instrukce pravidla instruksi
   aturan huong_dan quy_tac οδηγίες κανόνες التعليمات تعليمات القواعد निर्देश नियम ההוראות הוראות הכללים`,
  `début anfang principio początku önceki başta начале попередні tidigare předchozí sebelumnya awal προηγούμενες السابقة
   पिछले शुरुआत הקודמות`,
  `olvídate yoksay unut ігноруй ignorera glöm zapomeň abaikan lupakan bo_qua αγνόησε ξέχασε تجاهل انس अनदेखा भूल התעלם
   שכח`,
  `validations approbation bestätigung genehmigung aprobaciones approvazione approvazioni conferma aprovação aprovações
   confirmação goedkeuring bevestiging zgody zgodę zatwierdzenia onay onayı подтверждения подтверждение одобрения
   проверки перевірку підтвердження godkännanden godkännande schvalování schválení persetujuan phe_duyet έγκριση موافقة
   الموافقة अनुमोदन באישור אישור`,
  `sans_validation plus_nécessaires überspringen überspringe ohne_rückfrage saltarte saltar omitir sospese sospesa pular
   overslaan pominąć zwalniam beklemeden atla пропусти пропустить больше_не hoppa přeskoč lewati tidak_perlu khong_can
   παράλειψε δεν_χρειάζεται لا_حاجة आवश्यकता_नहीं אין_צורך`,
  `propriétaire eigentümer leitung propietario dirección proprietario eigenaar właściciel yönetici владелец руководство
   адміністратор власник ägare správce vedení pemilik quan_tri διαχειριστής مدير المدير मालिक प्रशासक מנהל`,
  `droit erlaube erlaubt berechtigt autorizo permitido consentito toestemming uprawnienia pozwalam yetki yetkisi
   разрешаю разрешено права дозволяю tillåtet behörighet oprávnění izin άδεια صلاحية अनुमति רשות`,
  `recopie mostrami dimmi cole laat toon pokaż podaj göster söyle yaz скажи visa berätta ukaž tampilkan tunjukkan
   cho_toi δείξε πες أظهر اعرض दिखाओ बताओ הצג תראה`,
  `überweise envíame reenvía transfiere inoltra envie transfira stuur wyślij prześlij gönder yükle перешли надішли
   skicka pošli kirim gui στείλε أرسل भेजो שלח`,
  `de_passe clés clé schlüssel contraseñas chiavi senha senhas chave chaves wachtwoord sleutels hasło hasła klucze şifre
   parola anahtar пароли ключи ключ секретные паролі ключі lösenord nycklar hesla klíče kata_sandi kunci mat_khau
   κωδικούς κλειδιά المرور مفاتيح पासवर्ड कुंजी הסיסמאות סיסמה מפתחות`,
  `discrètement heimlich unbemerkt secretamente segretamente stilletjes potajemnie gizlice тайно незаметно не_сообщая
   таємно tysthet potají bi_mat κρυφά سرا चुपचाप בשקט`,
  `supprime efface lösche lösch entferne elimina borra cancella apague exclua verwijder usuń sil удали видали radera smaž
   hapus xoa διάγραψε احذف हटाओ מחק`,
  `tu toi vous du dich dir você jij ty sen sana ты тебе вы ти kamu ban εσύ أنت तुम तुम्हें אתה`,
  `maintenant désormais jetzt sofort ahora adesso agora nu teraz şimdi сейчас теперь зараз nyní sekarang τώρα الآن अब עכשיו`,
  `externe externo esterno externa extern zewnętrzny harici внешний зовнішню externí eksternal εξωτερική الخارجي बाहरी חיצונית`,
  `nowa yeni нова ny baru νέα جديدة नई חדשה`,
  `données clients daten kunden datos clientes dati clienti dados klantgegevens dane klientów müşteri данные клиентов
   дані kunddata zákazníky pelanggan δεδομένα العملاء ग्राहक לקוחות`,
];

/** Chinese, Japanese and Korean are written without spaces: their words are found inside the text, in the order of CLASSES. */
const CJK_WORDS: readonly (readonly string[])[] = [
  '助手 アシスタント 模型 어시스턴트',
  '指令 指示 提示 规则 規則 ルール 지시 지침 규칙 프롬프트',
  '之前 以前 最初 一开始 先前 前の 처음 이전',
  '忽略 忘记 無視 忘れ 무시 잊어',
  '审批 批准 确认 承認 確認 승인 확인',
  '取消 不需要 不必 不要 필요 없 건너',
  '管理员 管理者 관리자 所有者 老板',
  '权限 許可 권한 授权',
  '告诉 显示 输出 見せ 表示 教え 보여 알려',
  '发送 发到 转发 送信 転送 보내',
  '密码 密钥 秘密 パスワード 비밀번호',
  '悄悄 知らせずに 몰래 不要告诉',
  '删除 削除 삭제',
  '你 あなた 당신',
  '现在 今すぐ 지금',
  '外部 외부',
  '新的 新しい 새로운',
  '数据 客户 データ 데이터 고객',
].map((list) => list.split(' '));
const CJK = /[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/;

/** Word -> bit mask of its classes. */
const CLASSES_OF = new Map<string, number>();
/** First word -> second word -> bit mask of the classes of the two-word phrase. */
const PHRASES = new Map<string, Map<string, number>>();
CLASSES.forEach((members, c) => {
  const translated = [...words(OTHER_LANGUAGES[c])].map((w) => w.replace('_', ' '));
  for (const m of [...members, ...translated]) {
    const space = m.indexOf(' ');
    if (space < 0) {
      CLASSES_OF.set(m, (CLASSES_OF.get(m) ?? 0) | (1 << c));
      continue;
    }
    const first = m.slice(0, space);
    const second = m.slice(space + 1);
    const seconds = PHRASES.get(first) ?? new Map<string, number>();
    seconds.set(second, (seconds.get(second) ?? 0) | (1 << c));
    PHRASES.set(first, seconds);
  }
});

/** The classes of the Chinese, Japanese and Korean words in a text (none for other scripts). */
export function cjkClassesOf(text: string): number {
  if (!CJK.test(text)) return 0;
  let mask = 0;
  CJK_WORDS.forEach((list, c) => {
    if (list.some((w) => text.includes(w))) mask |= 1 << c;
  });
  return mask;
}

export const CLASS_COUNT = CLASSES.length;

/** The classes of a word (folded: lower case, no diacritics), given the word before it. */
export function classesOf(previous: string, folded: string): number {
  return (CLASSES_OF.get(folded) ?? 0) | (PHRASES.get(previous)?.get(folded) ?? 0);
}
